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
        """
        anchors = tf.convert_to_tensor(anchors, tf.float32)
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
