"""COCO box metrics through pycocotools, under the OD API's `DetectionBoxes_*` names, fed one image at a time."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfodkit.errors import TfodkitError
from tfodkit.label_map import LabelMap

# The OD API's names for COCOeval.stats[0..11], in that order (metrics/coco_tools.py, prefixed as
# CocoDetectionEvaluator.evaluate does).
SUMMARY_METRICS: tuple[str, ...] = (
    "DetectionBoxes_Precision/mAP",
    "DetectionBoxes_Precision/mAP@.50IOU",
    "DetectionBoxes_Precision/mAP@.75IOU",
    "DetectionBoxes_Precision/mAP (small)",
    "DetectionBoxes_Precision/mAP (medium)",
    "DetectionBoxes_Precision/mAP (large)",
    "DetectionBoxes_Recall/AR@1",
    "DetectionBoxes_Recall/AR@10",
    "DetectionBoxes_Recall/AR@100",
    "DetectionBoxes_Recall/AR@100 (small)",
    "DetectionBoxes_Recall/AR@100 (medium)",
    "DetectionBoxes_Recall/AR@100 (large)",
)
MAP_50 = "DetectionBoxes_Precision/mAP@.50IOU"
PER_CLASS_AP_50_PREFIX = "DetectionBoxes_PerformanceByCategory/mAP@.50IOU/"
# What pycocotools (and so the OD API) reports where a metric has no ground truth to be measured on.
UNDEFINED = -1.0


def per_class_tag(class_name: str) -> str:
    """The per-class AP@0.5 tag of one class."""
    return PER_CLASS_AP_50_PREFIX + class_name


def category_names(label_map: LabelMap) -> dict[int, str]:
    """Class id -> the name the metrics use: the display_name where the label map has one, as the OD API's
    category index does, else the name."""
    return {class_id: label_map.display_names.get(name, name) for name, class_id in label_map.ids.items()}


def _boxes(values: Any, what: str, key: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"image {key!r}: {what} must be [N, 4] (ymin, xmin, ymax, xmax), got shape {array.shape}")
    return array


def _floats(values: Any, length: int, what: str, key: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != length:
        raise ValueError(f"image {key!r}: {what} has {array.shape[0]} values for {length} boxes")
    return array


def _whole_numbers(values: Any, length: int, what: str, key: str) -> np.ndarray:
    array = _floats(values, length, what, key)
    if not np.all(array == np.round(array)):
        raise ValueError(f"image {key!r}: {what} must hold whole numbers, got {array.tolist()}")
    return array.astype(np.int64)


def _coco_xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalised [ymin, xmin, ymax, xmax] -> absolute pixel [x, y, w, h], the box format COCO evaluates."""
    ymin, xmin, ymax, xmax = (boxes[:, i] for i in range(4))
    return np.stack([xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height], axis=1)


class CocoDetectionMetrics:
    """Accumulates ground truth and detections image by image, then computes the COCO metrics.

    Ground truth flagged `difficult` is evaluated as ordinary ground truth (iscrowd 0), as the OD API's
    CocoDetectionEvaluator does: it never reads groundtruth_difficult. The flags are counted so that a run
    can say how many such boxes its metrics include (docs/metrics.md).
    """

    def __init__(self, label_map: LabelMap) -> None:
        self._names = category_names(label_map)
        if len(set(self._names.values())) != len(self._names):
            raise TfodkitError("the label map gives two classes the same display_name; per-class metrics need "
                               f"distinct names: {sorted(self._names.values())}")
        self._keys: set[str] = set()
        self._images: list[dict[str, Any]] = []
        self._groundtruth: list[dict[str, Any]] = []
        self._detections: list[dict[str, Any]] = []
        self.num_difficult_boxes = 0

    @property
    def num_images(self) -> int:
        return len(self._images)

    @property
    def num_groundtruth_boxes(self) -> int:
        return len(self._groundtruth)

    @property
    def num_detections(self) -> int:
        return len(self._detections)

    @property
    def names(self) -> dict[int, str]:
        """Class id -> name, in label map id order."""
        return dict(sorted(self._names.items()))

    @property
    def images(self) -> tuple[dict[str, Any], ...]:
        """The images added, as COCO image records (id, height, width)."""
        return tuple(self._images)

    @property
    def groundtruth(self) -> tuple[dict[str, Any], ...]:
        """The ground-truth boxes added, as COCO annotations (bbox in pixels x, y, w, h)."""
        return tuple(self._groundtruth)

    @property
    def detections(self) -> tuple[dict[str, Any], ...]:
        """The detections added, as COCO results (bbox in pixels x, y, w, h, score)."""
        return tuple(self._detections)

    def add_image(
        self,
        key: str,
        image_height: int,
        image_width: int,
        groundtruth_boxes: Any,
        groundtruth_classes: Any,
        groundtruth_difficult: Any,
        detection_boxes: Any,
        detection_scores: Any,
        detection_classes: Any,
        num_detections: int | None = None,
    ) -> None:
        """Add one image: ground truth (unpadded) and the model's detections for it.

        key: the image's unique name (its source_id or filename), used in error messages.
        image_height, image_width: the original image size in pixels; boxes are scaled to it, so the
          small/medium/large areas are those of the original image, as in the OD API.
        groundtruth_boxes [M, 4] and detection_boxes [N, 4]: normalised ymin, xmin, ymax, xmax.
        groundtruth_classes [M], detection_classes [N]: 1-based label map ids (floats holding whole numbers
          are accepted, as the model outputs them). groundtruth_difficult [M]: the difficult flags.
        num_detections: how many leading detection rows are real (the model pads to max_total_detections).
        """
        if key in self._keys:
            raise TfodkitError(f"image {key!r} is evaluated twice: two eval records share that source_id")
        if image_height <= 0 or image_width <= 0:
            raise ValueError(f"image {key!r}: size {image_height}x{image_width} is not positive")
        gt_boxes = _boxes(groundtruth_boxes, "groundtruth_boxes", key)
        gt_classes = _whole_numbers(groundtruth_classes, len(gt_boxes), "groundtruth_classes", key)
        difficult = _whole_numbers(groundtruth_difficult, len(gt_boxes), "groundtruth_difficult", key)
        det_boxes = _boxes(detection_boxes, "detection_boxes", key)
        count = len(det_boxes) if num_detections is None else int(num_detections)
        if not 0 <= count <= len(det_boxes):
            raise ValueError(f"image {key!r}: num_detections {count} is outside 0..{len(det_boxes)}")
        det_scores = _floats(detection_scores, len(det_boxes), "detection_scores", key)[:count]
        det_classes = _whole_numbers(detection_classes, len(det_boxes), "detection_classes", key)[:count]
        det_boxes = det_boxes[:count]
        self._check_classes(gt_classes, key, "ground-truth class")
        self._check_classes(det_classes, key, "detection class")

        image_id = len(self._images) + 1
        self._keys.add(key)
        self._images.append({"id": image_id, "height": int(image_height), "width": int(image_width)})
        for xywh, class_id in zip(_coco_xywh(gt_boxes, image_height, image_width), gt_classes):
            self._groundtruth.append({
                "id": len(self._groundtruth) + 1, "image_id": image_id, "category_id": int(class_id),
                "bbox": xywh.tolist(), "area": float(xywh[2] * xywh[3]), "iscrowd": 0,
            })
        for xywh, score, class_id in zip(_coco_xywh(det_boxes, image_height, image_width), det_scores, det_classes):
            self._detections.append({
                "id": len(self._detections) + 1, "image_id": image_id, "category_id": int(class_id),
                "bbox": xywh.tolist(), "area": float(xywh[2] * xywh[3]), "score": float(score), "iscrowd": 0,
            })
        self.num_difficult_boxes += int(np.count_nonzero(difficult))

    def add_batch(self, labels: Mapping[str, Any], detections: Mapping[str, Any]) -> None:
        """Add every image of an eval batch: `labels` as tfodkit.inputs' eval dataset yields them (source_id,
        original_image_spatial_shape, boxes, classes, difficult, num_boxes; padded), `detections` as the
        model's postprocess outputs them (detection_boxes, detection_scores, detection_classes,
        num_detections); tensors or numpy arrays."""
        labels = {name: np.asarray(value) for name, value in labels.items()}
        detections = {name: np.asarray(value) for name, value in detections.items()}
        for i, source_id in enumerate(labels["source_id"]):
            count = int(labels["num_boxes"][i])
            height, width = (int(v) for v in labels["original_image_spatial_shape"][i])
            self.add_image(
                source_id.decode("utf-8") if isinstance(source_id, bytes) else str(source_id),
                height,
                width,
                labels["boxes"][i, :count],
                labels["classes"][i, :count],
                labels["difficult"][i, :count],
                detections["detection_boxes"][i],
                detections["detection_scores"][i],
                detections["detection_classes"][i],
                int(detections["num_detections"][i]),
            )

    def _check_classes(self, classes: np.ndarray, key: str, what: str) -> None:
        unknown = sorted({int(c) for c in classes} - self._names.keys())
        if unknown:
            raise TfodkitError(
                f"image {key!r}: {what} id(s) {unknown} are not in the label map (ids {sorted(self._names)}); "
                "the model's num_classes or the label map does not match the data"
            )

    def coco_eval(self) -> COCOeval:
        """pycocotools' COCOeval over everything added, evaluated and accumulated (its eval["precision"]
        [T, R, K, A, M] table filled in)."""
        if not self._images:
            raise TfodkitError("no images were evaluated: the eval input is empty")
        categories = [{"id": class_id, "name": name} for class_id, name in sorted(self._names.items())]
        groundtruth = _coco_index({"images": self._images, "annotations": self._groundtruth,
                                   "categories": categories})
        detections = _coco_index({"images": self._images, "annotations": self._detections,
                                  "categories": categories})
        evaluator = COCOeval(groundtruth, detections, iouType="bbox")
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate()
            evaluator.accumulate()
        return evaluator

    def compute(self) -> dict[str, float]:
        """The 12 summary metrics, then AP@0.5 of each class in label map order; UNDEFINED (-1) where
        there is no ground truth to measure on (a size range, or a class, with no ground-truth box)."""
        evaluator = self.coco_eval()
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.summarize()
        metrics = {name: float(value) for name, value in zip(SUMMARY_METRICS, evaluator.stats)}
        metrics.update(_per_class_ap_50(evaluator, self._names))
        return metrics


def _coco_index(dataset: dict[str, Any]) -> COCO:
    """A pycocotools COCO object over an in-memory dataset (no JSON file; an empty list is allowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        index = COCO()
        index.dataset = dataset
        index.createIndex()
    return index


def _per_class_ap_50(evaluator: COCOeval, names: dict[int, str]) -> dict[str, float]:
    """AP at IoU 0.5, all areas, 100 detections, per class, from COCOeval's precision[T, R, K, A, M] table."""
    params = evaluator.params
    iou_index = int(np.flatnonzero(np.isclose(params.iouThrs, 0.5))[0])
    area_index = params.areaRngLbl.index("all")
    dets_index = params.maxDets.index(100)
    precision = evaluator.eval["precision"]
    result = {}
    for k, class_id in enumerate(params.catIds):
        values = precision[iou_index, :, k, area_index, dets_index]
        defined = values[values > -1]
        result[per_class_tag(names[class_id])] = float(defined.mean()) if defined.size else UNDEFINED
    return result
