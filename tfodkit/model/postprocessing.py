"""SSD post-processing: score conversion, box decoding and the OD API's batch multiclass non-max suppression."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder

# Output keys, as the OD API's exported detection models name them.
DETECTION_KEYS = (
    "detection_boxes",
    "detection_scores",
    "detection_classes",
    "num_detections",
    "raw_detection_boxes",
    "raw_detection_scores",
    "detection_multiclass_scores",
    "detection_anchor_indices",
)


@dataclass(frozen=True)
class NmsConfig:
    """The `batch_non_max_suppression` block."""

    score_threshold: float = 0.0
    iou_threshold: float = 0.6
    max_detections_per_class: int = 100
    max_total_detections: int = 100
    soft_nms_sigma: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"batch_non_max_suppression.iou_threshold {self.iou_threshold} is not in [0, 1]")
        if self.max_detections_per_class > self.max_total_detections:
            raise ValueError(
                "batch_non_max_suppression.max_detections_per_class should be no greater than max_total_detections"
            )
        if self.soft_nms_sigma < 0.0:
            raise ValueError("batch_non_max_suppression.soft_nms_sigma must be non-negative")


def convert_scores(logits: tf.Tensor, converter: str, logit_scale: float = 1.0) -> tf.Tensor:
    """`score_converter` (IDENTITY | SIGMOID | SOFTMAX) applied to logits / logit_scale."""
    scaled = tf.multiply(logits, 1.0 / logit_scale)
    if converter == "SIGMOID":
        return tf.sigmoid(scaled)
    if converter == "SOFTMAX":
        return tf.nn.softmax(scaled)
    return scaled


def _single_image_nms(
    boxes: tf.Tensor, scores: tf.Tensor, multiclass_scores: tf.Tensor, config: NmsConfig
) -> tuple[tf.Tensor, ...]:
    """Per-class NMS, merged by score, clipped to [0, 1] and padded to max_total_detections."""
    num_boxes = tf.shape(boxes)[0]
    num_classes = scores.shape[1]
    max_per_class = tf.minimum(config.max_detections_per_class, num_boxes)
    selected, selected_scores, selected_classes = [], [], []
    for class_index in range(num_classes):
        indices, class_scores = tf.image.non_max_suppression_with_scores(
            boxes,
            scores[:, class_index],
            max_per_class,
            iou_threshold=config.iou_threshold,
            score_threshold=config.score_threshold,
            soft_nms_sigma=config.soft_nms_sigma,
        )
        selected.append(indices)
        selected_scores.append(class_scores)
        selected_classes.append(tf.fill(tf.shape(indices), class_index))
    indices = tf.concat(selected, 0)
    merged_scores = tf.concat(selected_scores, 0)
    classes = tf.concat(selected_classes, 0)
    # Sort by score (top_k keeps the earlier entry first among equal scores, like the OD API's sort_by_field).
    order = tf.nn.top_k(merged_scores, k=tf.shape(merged_scores)[0], sorted=True).indices
    indices, merged_scores, classes = (tf.gather(t, order) for t in (indices, merged_scores, classes))
    # Clip to the image window and drop boxes left with no area.
    clipped = tf.clip_by_value(tf.gather(boxes, indices), 0.0, 1.0)
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = tf.reshape(tf.where(area > 0.0), [-1])[: config.max_total_detections]
    count = tf.shape(keep)[0]
    pad = config.max_total_detections - count
    indices = tf.gather(indices, keep)

    def padded(tensor: tf.Tensor) -> tf.Tensor:
        paddings = [[0, pad]] + [[0, 0]] * (len(tensor.shape) - 1)
        return tf.pad(tensor, paddings)

    return (
        padded(tf.gather(clipped, keep)),
        padded(tf.gather(merged_scores, keep)),
        padded(tf.cast(tf.gather(classes, keep), tf.float32)),
        padded(tf.gather(multiclass_scores, indices)),
        padded(indices),
        count,
    )


def postprocess(
    box_encodings: tf.Tensor,
    class_logits: tf.Tensor,
    anchors: tf.Tensor,
    box_coder: FasterRcnnBoxCoder,
    nms: NmsConfig,
    score_converter: str = "SIGMOID",
    logit_scale: float = 1.0,
) -> dict[str, tf.Tensor]:
    """Detections from raw predictions: the OD API's SSD postprocess plus its exporter's 1-based classes.

    box_encodings [B, N, 4], class_logits [B, N, C + 1] (column 0 is background), anchors [N, 4].
    """
    raw_boxes = box_coder.decode(box_encodings, anchors[tf.newaxis])
    raw_scores = convert_scores(class_logits, score_converter, logit_scale)
    class_scores = raw_scores[:, :, 1:]

    def per_image(args: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, ...]:
        return _single_image_nms(args[0], args[1], args[2], nms)

    total = nms.max_total_detections
    num_slots = class_logits.shape[-1]
    signature = (
        tf.TensorSpec([total, 4], tf.float32),
        tf.TensorSpec([total], tf.float32),
        tf.TensorSpec([total], tf.float32),
        tf.TensorSpec([total, num_slots], tf.float32),
        tf.TensorSpec([total], tf.int32),
        tf.TensorSpec([], tf.int32),
    )
    boxes, scores, classes, multiclass, anchor_indices, counts = tf.map_fn(
        per_image, (raw_boxes, class_scores, raw_scores), fn_output_signature=signature
    )
    return {
        "detection_boxes": boxes,
        "detection_scores": scores,
        # 1-based label map ids, as the OD API's exporter writes them (padding rows hold 1 there too).
        "detection_classes": classes + 1.0,
        "num_detections": tf.cast(counts, tf.float32),
        "raw_detection_boxes": raw_boxes,
        "raw_detection_scores": raw_scores,
        "detection_multiclass_scores": multiclass,
        "detection_anchor_indices": anchor_indices,
    }
