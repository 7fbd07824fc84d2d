"""argmax_matcher and IoU: thresholds, ignored band, forced matches, padded rows."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfodkit.model.matcher import ArgMaxMatcher
from tfodkit.model.similarity import iou

# 2 groundtruth rows x 5 anchor columns.
SIMILARITY = tf.constant([[0.7, 0.45, 0.2, 0.1, 0.0], [0.6, 0.3, 0.55, 0.05, 0.0]])


def test_iou_of_known_boxes() -> None:
    boxes1 = tf.constant([[0.0, 0.0, 0.5, 0.5]])
    boxes2 = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.9, 0.9], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(iou(boxes1, boxes2).numpy(), [[1.0, 0.0625 / 0.4375, 0.0, 0.0]], atol=1e-6)


def test_thresholds_split_matched_ignored_unmatched() -> None:
    matcher = ArgMaxMatcher(0.5, 0.4, negatives_lower_than_unmatched=True)
    # col0 best 0.7 row0; col1 0.45 in [0.4, 0.5) ignored; col2 0.55 row1; col3, col4 below 0.4 negatives.
    np.testing.assert_array_equal(matcher.match(SIMILARITY).numpy(), [0, -2, 1, -1, -1])


def test_negatives_between_thresholds_when_configured() -> None:
    matcher = ArgMaxMatcher(0.5, 0.4, negatives_lower_than_unmatched=False)
    np.testing.assert_array_equal(matcher.match(SIMILARITY).numpy(), [0, -1, 1, -2, -2])


def test_ignore_thresholds_matches_every_column() -> None:
    matcher = ArgMaxMatcher(None, None)
    np.testing.assert_array_equal(matcher.match(SIMILARITY).numpy(), [0, 0, 1, 0, 0])


def test_force_match_gives_each_row_its_best_column() -> None:
    similarity = tf.constant([[0.3, 0.2, 0.1], [0.1, 0.35, 0.2]])
    plain = ArgMaxMatcher(0.5, 0.5)
    forced = ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True)
    np.testing.assert_array_equal(plain.match(similarity).numpy(), [-1, -1, -1])
    np.testing.assert_array_equal(forced.match(similarity).numpy(), [0, 1, -1])
    # A padded (invalid) row claims nothing.
    np.testing.assert_array_equal(forced.match(similarity, valid_rows=tf.constant([True, False])).numpy(), [0, -1, -1])


def test_batched_and_empty_inputs() -> None:
    matcher = ArgMaxMatcher(0.5, 0.4)
    batched = matcher.match(tf.stack([SIMILARITY, SIMILARITY[::-1]])).numpy()
    np.testing.assert_array_equal(batched, [[0, -2, 1, -1, -1], [1, -2, 0, -1, -1]])
    np.testing.assert_array_equal(matcher.match(tf.zeros([0, 3])).numpy(), [-1, -1, -1])


def test_invalid_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError):
        ArgMaxMatcher(0.4, 0.5)
    with pytest.raises(ValueError):
        ArgMaxMatcher(0.5, 0.5, negatives_lower_than_unmatched=False)
