"""`argmax_matcher`: each anchor (column) takes the groundtruth row it overlaps most, subject to thresholds.

Match values: >= 0 the matched groundtruth row, -1 unmatched (a negative), -2 ignored (neither).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

UNMATCHED = -1
IGNORED = -2


@dataclass(frozen=True)
class ArgMaxMatcher:
    """Thresholds as in the OD API: matched_threshold=None (ignore_thresholds) matches every column."""

    matched_threshold: float | None = 0.5
    unmatched_threshold: float | None = 0.5
    negatives_lower_than_unmatched: bool = True
    force_match_for_each_row: bool = False

    def __post_init__(self) -> None:
        if self.matched_threshold is None:
            return
        unmatched = self.unmatched_threshold
        if unmatched is None:
            object.__setattr__(self, "unmatched_threshold", self.matched_threshold)
        elif unmatched > self.matched_threshold:
            raise ValueError("argmax_matcher.unmatched_threshold must not exceed matched_threshold")
        elif unmatched == self.matched_threshold and not self.negatives_lower_than_unmatched:
            raise ValueError(
                "argmax_matcher: with negatives_lower_than_unmatched false the two thresholds cannot be equal"
            )

    def match(self, similarity: tf.Tensor, valid_rows: tf.Tensor | None = None) -> tf.Tensor:
        """[..., M rows, N columns] similarity -> [..., N] int32 match values (all -1 when M is statically 0)."""
        if similarity.shape[-2] == 0:
            return tf.fill(tf.concat([tf.shape(similarity)[:-2], tf.shape(similarity)[-1:]], 0), UNMATCHED)
        if valid_rows is None:
            valid_rows = tf.ones(tf.shape(similarity)[:-1], tf.bool)
        matches = tf.argmax(similarity, axis=-2, output_type=tf.int32)
        if self.matched_threshold is not None:
            best = tf.reduce_max(similarity, axis=-2)
            below = best < self.unmatched_threshold
            between = tf.logical_and(best >= self.unmatched_threshold, best < self.matched_threshold)
            if self.negatives_lower_than_unmatched:
                low_value, between_value = UNMATCHED, IGNORED
            else:
                low_value, between_value = IGNORED, UNMATCHED
            matches = tf.where(below, low_value, matches)
            matches = tf.where(between, between_value, matches)
        if self.force_match_for_each_row:
            # Each valid row claims its best column; a column claimed by several rows goes to the first of them.
            best_columns = tf.argmax(similarity, axis=-1, output_type=tf.int32)
            claims = tf.one_hot(best_columns, tf.shape(similarity)[-1])
            claims *= tf.cast(valid_rows, tf.float32)[..., tf.newaxis]
            claimed_by = tf.argmax(claims, axis=-2, output_type=tf.int32)
            is_claimed = tf.reduce_max(claims, axis=-2) > 0
            matches = tf.where(is_claimed, claimed_by, matches)
        return matches
