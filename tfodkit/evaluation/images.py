"""The pictures TensorBoard shows: training inputs with their boxes, eval detections beside ground truth."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from tfodkit.dataset.draw import draw_boxes

# Label drawn for a class id the label map does not hold (the OD API's visualisation writes the same).
UNKNOWN_CLASS = "N/A"


@dataclasses.dataclass(frozen=True)
class VisualizationOptions:
    """How many eval images to draw and which detections to show: the OD API's eval_config fields
    num_visualizations, min_score_threshold and max_num_boxes_to_visualize (same defaults)."""

    num_visualizations: int = 10
    min_score_threshold: float = 0.5
    max_boxes: int = 20

    @classmethod
    def from_eval_config(cls, eval_config: Any) -> VisualizationOptions:
        """From an EvalConfig message (tfodkit.protos.pipeline_eval_pb2)."""
        return cls(
            num_visualizations=int(eval_config.num_visualizations),
            min_score_threshold=float(eval_config.min_score_threshold),
            max_boxes=int(eval_config.max_num_boxes_to_visualize),
        )


def to_uint8(image: Any) -> np.ndarray:
    """An HxWx3 image with pixel values in [0, 255] (uint8 or float, as the input pipeline yields them
    before the model's own scaling to [-1, 1]) as uint8."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxWx3 (or HxWx1) image, got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array
    return np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)


def _names(class_ids: np.ndarray, names: Mapping[int, str]) -> list[str]:
    return [names.get(int(class_id), UNKNOWN_CLASS) for class_id in class_ids]


def groundtruth_image(image: Any, boxes: Any, classes: Any, names: Mapping[int, str]) -> np.ndarray:
    """The image with each ground-truth box ([M, 4] normalised ymin, xmin, ymax, xmax) and its class name."""
    class_ids = np.asarray(classes, dtype=np.int64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.asarray(draw_boxes(to_uint8(image), boxes, _names(class_ids, names), class_ids))


def detections_image(
    image: Any,
    boxes: Any,
    scores: Any,
    classes: Any,
    names: Mapping[int, str],
    options: VisualizationOptions,
) -> np.ndarray:
    """The image with its best detections drawn as "name: NN%": at most options.max_boxes of those scoring
    at least options.min_score_threshold, highest first."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    class_ids = np.asarray(classes, dtype=np.float64).reshape(-1).astype(np.int64)
    keep = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= options.min_score_threshold]
    keep = keep[: options.max_boxes]
    labels = [f"{name}: {round(100 * scores[i])}%" for i, name in zip(keep, _names(class_ids[keep], names))]
    return np.asarray(draw_boxes(to_uint8(image), boxes[keep], labels, class_ids[keep]))


def side_by_side(
    image: Any,
    detections: Mapping[str, Any],
    groundtruth_boxes: Any,
    groundtruth_classes: Any,
    names: Mapping[int, str],
    options: VisualizationOptions,
) -> np.ndarray:
    """[H, 2W, 3] uint8: detections on the left, ground truth on the right, as the OD API's
    eval_side_by_side images. `detections` holds one image's detection_boxes, detection_scores,
    detection_classes (1-based) and num_detections, as the model outputs them."""
    count = int(detections["num_detections"])
    left = detections_image(
        image,
        np.asarray(detections["detection_boxes"])[:count],
        np.asarray(detections["detection_scores"])[:count],
        np.asarray(detections["detection_classes"])[:count],
        names,
        options,
    )
    right = groundtruth_image(image, groundtruth_boxes, groundtruth_classes, names)
    return np.concatenate([left, right], axis=1)
