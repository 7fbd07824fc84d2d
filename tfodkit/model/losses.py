"""SSD losses: sigmoid focal / sigmoid classification, smooth L1 localisation, hard example mining, normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from tfodkit.model.matcher import UNMATCHED


def sigmoid_cross_entropy(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """`weighted_sigmoid`: per-entry weighted sigmoid cross entropy, [B, N, C]."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits) * weights


def sigmoid_focal(
    logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, gamma: float = 2.0, alpha: float | None = 0.25
) -> tf.Tensor:
    """`weighted_sigmoid_focal`: (1 - p_t)^gamma * alpha_t * cross entropy, per entry [B, N, C]."""
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    probabilities = tf.sigmoid(logits)
    p_t = targets * probabilities + (1.0 - targets) * (1.0 - probabilities)
    modulating = tf.pow(1.0 - p_t, gamma) if gamma else 1.0
    alpha_weight = targets * alpha + (1.0 - targets) * (1.0 - alpha) if alpha is not None else 1.0
    return modulating * alpha_weight * cross_entropy * weights


def smooth_l1(predictions: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """`weighted_smooth_l1` (Huber with `delta`), summed over the code: [B, N]. NaN targets count as perfect."""
    targets = tf.where(tf.math.is_nan(targets), predictions, targets)
    error = tf.abs(predictions - targets)
    quadratic = tf.minimum(error, delta)
    huber = 0.5 * quadratic * quadratic + delta * (error - quadratic)
    return tf.reduce_sum(huber * weights[..., tf.newaxis], axis=-1)


@dataclass(frozen=True)
class HardExampleMiner:
    """`hard_example_miner`: keep the highest-loss anchors after NMS on their decoded boxes.

    loss_type: "both" ranks by cls_loss_weight * cls + loc_loss_weight * loc, "cls" or "loc" by one loss.
    num_hard_examples None keeps all boxes NMS lets through; max_negatives_per_positive None keeps every
    negative among them, otherwise at most max(min_negatives_per_image, ratio * positives) negatives.
    """

    num_hard_examples: int | None = 64
    iou_threshold: float = 0.7
    loss_type: str = "both"
    cls_loss_weight: float = 0.05
    loc_loss_weight: float = 0.06
    max_negatives_per_positive: float | None = None
    min_negatives_per_image: int = 0

    def _select(self, boxes: tf.Tensor, loc: tf.Tensor, cls: tf.Tensor, matches: tf.Tensor) -> tf.Tensor:
        if self.loss_type == "loc":
            ranking = loc
        elif self.loss_type == "cls":
            ranking = cls
        else:
            ranking = cls * self.cls_loss_weight + loc * self.loc_loss_weight
        count = self.num_hard_examples if self.num_hard_examples is not None else tf.shape(boxes)[0]
        selected = tf.image.non_max_suppression(boxes, ranking, count, self.iou_threshold)
        if self.max_negatives_per_positive is None:
            return selected
        picked = tf.gather(matches, selected)
        positives = picked >= 0
        negatives = tf.equal(picked, UNMATCHED)
        num_positives = tf.reduce_sum(tf.cast(positives, tf.int32))
        max_negatives = tf.maximum(
            self.min_negatives_per_image,
            tf.cast(self.max_negatives_per_positive * tf.cast(num_positives, tf.float32), tf.int32),
        )
        within_quota = tf.cumsum(tf.cast(negatives, tf.int32)) <= max_negatives
        return tf.boolean_mask(selected, tf.logical_or(positives, within_quota))

    def __call__(
        self, location_losses: tf.Tensor, cls_losses: tf.Tensor, decoded_boxes: tf.Tensor, matches: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-anchor losses [B, N] (cls summed over classes), boxes [B, N, 4], matches [B, N] -> summed (loc, cls)."""

        def per_image(args: tuple[tf.Tensor, ...]) -> tuple[tf.Tensor, tf.Tensor]:
            loc, cls, boxes, image_matches = args
            selected = self._select(boxes, loc, cls, image_matches)
            return tf.reduce_sum(tf.gather(loc, selected)), tf.reduce_sum(tf.gather(cls, selected))

        loc_sums, cls_sums = tf.map_fn(
            per_image,
            (location_losses, cls_losses, decoded_boxes, matches),
            fn_output_signature=(tf.float32, tf.float32),
        )
        return tf.reduce_sum(loc_sums), tf.reduce_sum(cls_sums)


@dataclass(frozen=True)
class SsdLoss:
    """The `loss` block plus the SSD normalisation switches."""

    classification: str = "sigmoid_focal"  # sigmoid_focal | sigmoid
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    smooth_l1_delta: float = 1.0
    classification_weight: float = 1.0
    localization_weight: float = 1.0
    hard_example_miner: HardExampleMiner | None = None
    normalize_loss_by_num_matches: bool = True
    normalize_loc_loss_by_codesize: bool = False
    code_size: int = 4

    def classification_losses(self, logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Per-entry classification losses [B, N, C + 1]."""
        if self.classification == "sigmoid":
            return sigmoid_cross_entropy(logits, targets, weights)
        return sigmoid_focal(logits, targets, weights, self.focal_gamma, self.focal_alpha)

    def __call__(
        self,
        box_encodings: tf.Tensor,
        class_logits: tf.Tensor,
        cls_targets: tf.Tensor,
        cls_weights: tf.Tensor,
        reg_targets: tf.Tensor,
        reg_weights: tf.Tensor,
        matches: tf.Tensor,
        decoded_boxes: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """{"Loss/localization_loss", "Loss/classification_loss"} as the OD API's SSD computes them.

        decoded_boxes [B, N, 4] are needed only with a hard example miner.
        """
        location_losses = smooth_l1(box_encodings, reg_targets, reg_weights, self.smooth_l1_delta)
        cls_losses = self.classification_losses(class_logits, cls_targets, cls_weights)
        if self.hard_example_miner is not None:
            localization, classification = self.hard_example_miner(
                location_losses, tf.reduce_sum(cls_losses, axis=-1), decoded_boxes, matches
            )
        else:
            localization = tf.reduce_sum(location_losses)
            classification = tf.reduce_sum(cls_losses)
        normalizer = tf.constant(1.0)
        if self.normalize_loss_by_num_matches:
            normalizer = tf.maximum(tf.reduce_sum(reg_weights), 1.0)
        loc_normalizer = normalizer * self.code_size if self.normalize_loc_loss_by_codesize else normalizer
        return {
            "Loss/localization_loss": self.localization_weight / loc_normalizer * localization,
            "Loss/classification_loss": self.classification_weight / normalizer * classification,
        }
