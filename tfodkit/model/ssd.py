"""The SSD meta-architecture: preprocess -> feature maps -> box/class predictions -> (losses | detections)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder
from tfodkit.model.losses import SsdLoss
from tfodkit.model.postprocessing import NmsConfig, postprocess
from tfodkit.model.preprocessing import FixedShapeResizer, preprocess
from tfodkit.model.target_assigner import TargetAssigner


class SSD(keras.Model):
    """Single-shot detector with injected parts (see tfodkit.model.builder.build_ssd for the usual way in).

    Sub-models: `feature_extractor` (preprocessed image -> feature maps) and `box_predictor`
    (feature maps -> box encodings, class logits). Anchors are a constant computed once from the static
    feature map sizes.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        resizer: FixedShapeResizer,
        feature_extractor: keras.Model,
        box_predictor: keras.Model,
        anchors: np.ndarray,
        box_coder: FasterRcnnBoxCoder,
        target_assigner: TargetAssigner,
        loss: SsdLoss,
        nms: NmsConfig,
        score_converter: str = "SIGMOID",
        logit_scale: float = 1.0,
        name: str = "ssd",
    ) -> None:
        super().__init__(name=name)
        self.num_classes = num_classes
        self.resizer = resizer
        self.feature_extractor = feature_extractor
        self.box_predictor = box_predictor
        self.anchors = tf.constant(anchors, tf.float32)
        self.box_coder = box_coder
        self.target_assigner = target_assigner
        self.loss_config = loss
        self.nms = nms
        self.score_converter = score_converter
        self.logit_scale = logit_scale

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model sees after resizing."""
        return self.resizer.height, self.resizer.width

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """[B, H, W, 3] pixels in [0, 255] -> resized, scaled model input in [-1, 1]."""
        return preprocess(images, self.resizer)

    def call(self, images: tf.Tensor, training: bool = False) -> dict[str, Any]:
        """Raw predictions: preprocessed_inputs, feature_maps (list), box_encodings [B, N, 4],
        class_predictions_with_background [B, N, C + 1] (logits) and anchors [N, 4]."""
        preprocessed = self.preprocess(images)
        feature_maps = self.feature_extractor(preprocessed, training=training)
        box_encodings, class_predictions = self.box_predictor(feature_maps, training=training)
        return {
            "preprocessed_inputs": preprocessed,
            "feature_maps": list(feature_maps),
            "box_encodings": box_encodings,
            "class_predictions_with_background": class_predictions,
            "anchors": self.anchors,
        }

    def postprocess(self, predictions: dict[str, Any]) -> dict[str, tf.Tensor]:
        """Detections (see tfodkit.model.postprocessing.DETECTION_KEYS) from `call`'s output."""
        return postprocess(
            predictions["box_encodings"],
            predictions["class_predictions_with_background"],
            self.anchors,
            self.box_coder,
            self.nms,
            self.score_converter,
            self.logit_scale,
        )

    def detect(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Inference end to end: pixels -> detections."""
        return self.postprocess(self(images, training=False))

    def compute_losses(
        self,
        predictions: dict[str, Any],
        groundtruth_boxes: tf.Tensor,
        groundtruth_classes: tf.Tensor,
        groundtruth_weights: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """Loss/localization_loss, Loss/classification_loss, Loss/regularization_loss and Loss/total_loss.

        groundtruth_boxes [B, M, 4] normalised corners, groundtruth_classes [B, M] 1-based label map ids,
        groundtruth_weights [B, M] (0 for padding rows).
        """
        targets = self.target_assigner.assign(
            self.anchors, groundtruth_boxes, groundtruth_classes, groundtruth_weights
        )
        decoded = None
        if self.loss_config.hard_example_miner is not None:
            decoded = self.box_coder.decode(predictions["box_encodings"], self.anchors[tf.newaxis])
        losses = self.loss_config(
            predictions["box_encodings"],
            predictions["class_predictions_with_background"],
            targets.cls_targets,
            targets.cls_weights,
            targets.reg_targets,
            targets.reg_weights,
            targets.matches,
            decoded,
        )
        regularization = tf.add_n([tf.constant(0.0)] + [tf.cast(loss, tf.float32) for loss in self.losses])
        losses["Loss/regularization_loss"] = regularization
        losses["Loss/total_loss"] = tf.add_n(list(losses.values()))
        return losses
