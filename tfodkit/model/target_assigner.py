"""SSD target assignment: match anchors to groundtruth boxes, then build regression/classification targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder
from tfodkit.model.matcher import UNMATCHED, ArgMaxMatcher
from tfodkit.model.similarity import iou


class Targets(NamedTuple):
    """Per-anchor training targets for a batch."""

    cls_targets: tf.Tensor  # [B, N, C + 1] (column 0 background)
    cls_weights: tf.Tensor  # [B, N, C + 1]
    reg_targets: tf.Tensor  # [B, N, 4] encoded boxes, zero where unmatched
    reg_weights: tf.Tensor  # [B, N]
    matches: tf.Tensor  # [B, N] matched row, -1 unmatched, -2 ignored


def _drop_trailing_padding(
    boxes: tf.Tensor, classes: tf.Tensor, weights: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """[B, M, ...] groundtruth -> its first K rows, K = 1 + the index of the last row with weight > 0 in any image
    (at least 1: a padding row keeps the shapes non-empty and matches nothing)."""
    if weights.shape[-1] == 0:
        return boxes, classes, weights
    row_numbers = tf.range(1, tf.shape(weights)[-1] + 1)
    in_use = tf.reduce_max(tf.where(weights > 0, row_numbers, 0))
    rows = tf.maximum(in_use, 1)
    return boxes[:, :rows], classes[:, :rows], weights[:, :rows]


@dataclass(frozen=True)
class TargetAssigner:
    """IoU similarity + argmax matcher + box coder, as the OD API's SSD target assigner."""

    matcher: ArgMaxMatcher
    box_coder: FasterRcnnBoxCoder
    num_classes: int
    encode_background_as_zeros: bool = False
    negative_class_weight: float = 1.0

    def unmatched_class_label(self) -> tf.Tensor:
        """Class target of unmatched anchors: all zeros, or one-hot background."""
        background = 0.0 if self.encode_background_as_zeros else 1.0
        return tf.constant([background] + [0.0] * self.num_classes, tf.float32)

    def assign(
        self,
        anchors: tf.Tensor,
        groundtruth_boxes: tf.Tensor,
        groundtruth_classes: tf.Tensor,
        groundtruth_weights: tf.Tensor,
    ) -> Targets:
        """anchors [N, 4]; groundtruth boxes [B, M, 4] normalised, classes [B, M] 1-based ids, weights [B, M].

        Padding rows carry weight 0: they are never force-matched and, with zero boxes, never overlap anchors.
        The rows after the last weighted row of every image are dropped first (as the OD API unpads groundtruth
        before assigning), so the IoU matrix is [B, rows in use, N] rather than [B, max_number_of_boxes, N].
        """
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        groundtruth_boxes, groundtruth_classes, groundtruth_weights = _drop_trailing_padding(
            groundtruth_boxes, groundtruth_classes, groundtruth_weights
        )
        similarity = iou(groundtruth_boxes, anchors[tf.newaxis])
        matches = self.matcher.match(similarity, valid_rows=groundtruth_weights > 0)
        matched = matches >= 0
        rows = tf.maximum(matches, 0)
        matched_boxes = tf.gather(groundtruth_boxes, rows, batch_dims=1)
        reg_targets = tf.where(
            matched[..., tf.newaxis], self.box_coder.encode(matched_boxes, anchors[tf.newaxis]), 0.0
        )
        one_hot = tf.one_hot(tf.cast(groundtruth_classes, tf.int32), self.num_classes + 1)
        matched_labels = tf.gather(one_hot, rows, batch_dims=1)
        cls_targets = tf.where(matched[..., tf.newaxis], matched_labels, self.unmatched_class_label())
        matched_weights = tf.gather(groundtruth_weights, rows, batch_dims=1)
        reg_weights = tf.where(matched, matched_weights, 0.0)
        negative_weight = tf.where(tf.equal(matches, UNMATCHED), self.negative_class_weight, 0.0)
        anchor_weights = tf.where(matched, matched_weights, negative_weight)
        cls_weights = tf.tile(anchor_weights[..., tf.newaxis], [1, 1, self.num_classes + 1])
        return Targets(cls_targets, cls_weights, reg_targets, reg_weights, matches)
