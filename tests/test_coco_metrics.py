"""COCO metrics on digit scenes: perfect, shifted, spurious and missing detections, difficult boxes, empty cases."""

from __future__ import annotations

import numpy as np
import pytest
from eval_scenes import LABEL_MAP, scenes, shifted_right

from tfodkit.errors import TfodkitError
from tfodkit.evaluation import loss_gap
from tfodkit.evaluation.coco_metrics import (
    MAP_50,
    SUMMARY_METRICS,
    UNDEFINED,
    CocoDetectionMetrics,
    per_class_tag,
)
from tfodkit.label_map import parse

IMAGES = scenes(8)
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _evaluate(images, detections_for, difficult_for=None, label_map=LABEL_MAP) -> dict[str, float]:
    metrics = CocoDetectionMetrics(label_map)
    for image in images:
        boxes, scores, classes = detections_for(image)
        difficult = np.zeros(len(image.boxes)) if difficult_for is None else difficult_for(image)
        metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes, difficult,
                          boxes, scores, classes)
    return metrics.compute()


def _perfect(image):
    return image.boxes, np.full(len(image.boxes), 0.9), image.classes.astype(np.float32)


def _present_classes(images) -> set[int]:
    return {int(c) for image in images for c in image.classes}


def test_metric_names_are_the_od_api_ones():
    result = _evaluate(IMAGES, _perfect)
    assert list(result)[:12] == list(SUMMARY_METRICS)
    assert SUMMARY_METRICS[1] == MAP_50 == "DetectionBoxes_Precision/mAP@.50IOU"
    assert "DetectionBoxes_Recall/AR@100 (small)" in result
    per_class = [tag for tag in result if tag.startswith("DetectionBoxes_PerformanceByCategory/mAP@.50IOU/")]
    assert per_class == [per_class_tag(name) for name in sorted(LABEL_MAP.ids, key=LABEL_MAP.ids.get)]


def test_perfect_detections_score_one():
    result = _evaluate(IMAGES, _perfect)
    for tag in ("DetectionBoxes_Precision/mAP", MAP_50, "DetectionBoxes_Precision/mAP@.75IOU",
                "DetectionBoxes_Recall/AR@100"):
        assert result[tag] == pytest.approx(1.0)
    names = LABEL_MAP.names_by_id()
    present = _present_classes(IMAGES)
    for class_id, name in names.items():
        expected = 1.0 if class_id in present else UNDEFINED
        assert result[per_class_tag(name)] == pytest.approx(expected), name


def test_box_at_iou_0_62_counts_at_0_5_but_not_at_0_75():
    iou = 0.62
    result = _evaluate(IMAGES, lambda im: (shifted_right(im.boxes, im.width, iou), *_perfect(im)[1:]))
    assert result[MAP_50] == pytest.approx(1.0)
    assert result["DetectionBoxes_Precision/mAP@.75IOU"] == pytest.approx(0.0)
    # COCO mAP averages AP over IoU 0.50:0.05:0.95: AP is 1 where the threshold is <= 0.62, else 0.
    assert result["DetectionBoxes_Precision/mAP"] == pytest.approx(np.mean(COCO_IOU_THRESHOLDS <= iou))
    for class_id in _present_classes(IMAGES):
        assert result[per_class_tag(LABEL_MAP.names_by_id()[class_id])] == pytest.approx(1.0)
    result_below = _evaluate(IMAGES, lambda im: (shifted_right(im.boxes, im.width, 0.45), *_perfect(im)[1:]))
    assert result_below[MAP_50] == pytest.approx(0.0)


def test_false_positives_on_images_without_ground_truth_lower_precision():
    """Background-only images (the same scenes without their digits) receive one detection per class that
    the real images hold, scored above every true detection: each class's AP becomes n / (n + f)."""
    empty = [type(image)(f"empty_{image.key}", image.background, image.background, np.zeros((0, 4)),
                         np.zeros(0, int)) for image in IMAGES[:3]]
    fp_classes = sorted(_present_classes(IMAGES))
    fp_box = np.array([[0.1, 0.1, 0.4, 0.4]])

    def detections(image):
        if image.key.startswith("empty_"):
            return np.repeat(fp_box, len(fp_classes), axis=0), np.full(len(fp_classes), 0.95), fp_classes
        return _perfect(image)

    result = _evaluate(list(IMAGES) + empty, detections)
    per_class_expected = {}
    for class_id in fp_classes:
        n = sum(int(np.sum(image.classes == class_id)) for image in IMAGES)
        per_class_expected[class_id] = n / (n + len(empty))
    names = LABEL_MAP.names_by_id()
    for class_id, expected in per_class_expected.items():
        assert result[per_class_tag(names[class_id])] == pytest.approx(expected, abs=1e-6)
    assert result[MAP_50] == pytest.approx(np.mean(list(per_class_expected.values())), abs=1e-6)
    assert result[MAP_50] < 1.0
    # Recall is untouched: every object is still found.
    assert result["DetectionBoxes_Recall/AR@100"] == pytest.approx(1.0)


def test_empty_images_and_classes_without_ground_truth():
    absent = sorted(set(LABEL_MAP.ids.values()) - _present_classes(IMAGES))
    assert absent, "the scenes should leave some digit classes out"
    blank = type(IMAGES[0])("blank.jpg", IMAGES[0].background, IMAGES[0].background, np.zeros((0, 4)), np.zeros(0))

    def detections(image):
        if image.key == "blank.jpg":
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
        boxes, scores, classes = _perfect(image)
        # A confident detection of a class nobody labelled: that class has no AP to lower.
        return (np.vstack([boxes, [[0.0, 0.0, 0.2, 0.2]]]), np.append(scores, 0.99), np.append(classes, absent[0]))

    result = _evaluate(list(IMAGES) + [blank], detections)
    assert result[MAP_50] == pytest.approx(1.0)
    assert result[per_class_tag(LABEL_MAP.names_by_id()[absent[0]])] == UNDEFINED


def test_no_detections_score_zero_not_undefined():
    result = _evaluate(IMAGES, lambda image: (np.zeros((0, 4)), np.zeros(0), np.zeros(0)))
    assert result[MAP_50] == 0.0
    assert result["DetectionBoxes_Recall/AR@100"] == 0.0
    for class_id in _present_classes(IMAGES):
        assert result[per_class_tag(LABEL_MAP.names_by_id()[class_id])] == 0.0


def test_difficult_boxes_are_ordinary_ground_truth():
    """As in the OD API's CocoDetectionEvaluator, a difficult box must be found: missing it costs recall
    and AP exactly as missing any other box does, and finding it is a true positive."""
    def difficult_first(image):
        flags = np.zeros(len(image.boxes))
        flags[0] = 1
        return flags

    def all_but_first(image):
        boxes, scores, classes = _perfect(image)
        return boxes[1:], scores[1:], classes[1:]

    missed_flagged = _evaluate(IMAGES, all_but_first, difficult_first)
    missed_unflagged = _evaluate(IMAGES, all_but_first)
    assert missed_flagged == missed_unflagged
    assert missed_flagged["DetectionBoxes_Recall/AR@100"] < 1.0
    assert missed_flagged[MAP_50] < 1.0
    assert _evaluate(IMAGES, _perfect, difficult_first)[MAP_50] == pytest.approx(1.0)

    metrics = CocoDetectionMetrics(LABEL_MAP)
    for image in IMAGES:
        metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes,
                          difficult_first(image), *_perfect(image))
    assert metrics.num_difficult_boxes == len(IMAGES)
    assert metrics.num_groundtruth_boxes == sum(len(image.boxes) for image in IMAGES)


def test_areas_are_measured_in_original_image_pixels():
    """The same normalised box is small (< 32^2 px) in a 200x200 image and large (> 96^2) in a 2000x2000 one."""
    box = np.array([[0.2, 0.2, 0.3, 0.3]])
    for size, small, large in ((200, 1.0, UNDEFINED), (2000, UNDEFINED, 1.0)):
        metrics = CocoDetectionMetrics(LABEL_MAP)
        metrics.add_image("one.jpg", size, size, box, [1], [0], box, [0.8], [1])
        result = metrics.compute()
        assert result["DetectionBoxes_Precision/mAP (small)"] == pytest.approx(small)
        assert result["DetectionBoxes_Precision/mAP (large)"] == pytest.approx(large)
        assert result["DetectionBoxes_Precision/mAP (medium)"] == UNDEFINED


def test_padded_detection_rows_past_num_detections_are_ignored():
    image = IMAGES[0]
    boxes, scores, classes = _perfect(image)
    padding = len(image.boxes) + 3
    padded_boxes = np.vstack([boxes, np.tile([[0.5, 0.5, 0.9, 0.9]], (3, 1))])
    padded_scores = np.append(scores, [0.99] * 3)
    padded_classes = np.append(classes, [image.classes[0]] * 3)
    metrics = CocoDetectionMetrics(LABEL_MAP)
    metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes, np.zeros(len(boxes)),
                      padded_boxes, padded_scores, padded_classes, num_detections=len(boxes))
    assert metrics.num_detections == len(boxes) < padding
    assert metrics.compute()[MAP_50] == pytest.approx(1.0)


def test_padded_eval_batch_equals_image_by_image():
    """A batch laid out as tfodkit.inputs' eval dataset yields it (padded ground truth, bytes source_id)."""
    max_boxes, max_detections = 10, 100
    batch = IMAGES[:4]
    labels = {
        "source_id": np.array([image.key.encode() for image in batch], dtype=object),
        "original_image_spatial_shape": np.array([[image.height, image.width] for image in batch], np.int32),
        "boxes": np.zeros((len(batch), max_boxes, 4), np.float32),
        "classes": np.zeros((len(batch), max_boxes), np.int32),
        "difficult": np.zeros((len(batch), max_boxes), bool),
        "num_boxes": np.array([len(image.boxes) for image in batch], np.int32),
    }
    detections = {
        "detection_boxes": np.zeros((len(batch), max_detections, 4), np.float32),
        "detection_scores": np.zeros((len(batch), max_detections), np.float32),
        "detection_classes": np.ones((len(batch), max_detections), np.float32),
        "num_detections": np.zeros(len(batch), np.float32),
    }
    for i, image in enumerate(batch):
        n = len(image.boxes)
        labels["boxes"][i, :n] = image.boxes
        labels["classes"][i, :n] = image.classes
        # Detections for all but the last box, so the metrics are not trivially 1.
        detections["detection_boxes"][i, : n - 1] = image.boxes[:-1]
        detections["detection_scores"][i, : n - 1] = 0.9
        detections["detection_classes"][i, : n - 1] = image.classes[:-1]
        detections["num_detections"][i] = n - 1
    metrics = CocoDetectionMetrics(LABEL_MAP)
    metrics.add_batch(labels, detections)
    one_by_one = _evaluate(batch, lambda image: (image.boxes[:-1], np.full(len(image.boxes) - 1, 0.9),
                                                  image.classes[:-1]))
    assert metrics.num_images == 4
    assert metrics.compute() == one_by_one
    assert one_by_one[MAP_50] < 1.0


def test_per_class_tags_use_label_map_display_names():
    label_map = parse('item { name: "a" id: 1 display_name: "apple" }\nitem { name: "b" id: 2 }')
    metrics = CocoDetectionMetrics(label_map)
    box = np.array([[0.1, 0.1, 0.5, 0.5]])
    metrics.add_image("x.jpg", 100, 100, box, [1], [0], box, [0.9], [1])
    result = metrics.compute()
    assert result["DetectionBoxes_PerformanceByCategory/mAP@.50IOU/apple"] == pytest.approx(1.0)
    assert result["DetectionBoxes_PerformanceByCategory/mAP@.50IOU/b"] == UNDEFINED


def test_user_errors_name_the_image():
    image = IMAGES[0]
    metrics = CocoDetectionMetrics(LABEL_MAP)
    with pytest.raises(TfodkitError, match="no images"):
        metrics.compute()
    metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes,
                      np.zeros(len(image.boxes)), *_perfect(image))
    with pytest.raises(TfodkitError, match=f"{image.key}.*twice"):
        metrics.add_image(image.key, image.height, image.width, image.boxes, image.classes,
                          np.zeros(len(image.boxes)), *_perfect(image))
    with pytest.raises(TfodkitError, match=r"other.jpg.*\[11\].*not in the label map"):
        metrics.add_image("other.jpg", 10, 10, [[0, 0, 1, 1]], [11], [0], np.zeros((0, 4)), [], [])
    with pytest.raises(ValueError, match="other.jpg.*groundtruth_difficult"):
        metrics.add_image("other.jpg", 10, 10, [[0, 0, 1, 1]], [1], [0, 0], np.zeros((0, 4)), [], [])


def test_loss_gaps_and_means():
    train = loss_gap.LossMeans()
    train.add({"Loss/classification_loss": 1.0, "Loss/localization_loss": 0.5,
               "Loss/regularization_loss": 0.25, "Loss/total_loss": 1.75}, batch_size=2)
    train.add({"Loss/classification_loss": 4.0, "Loss/localization_loss": 2.0,
               "Loss/regularization_loss": 0.25, "Loss/total_loss": 6.25}, batch_size=1)
    train_means = train.result()
    assert train_means["Loss/classification_loss"] == pytest.approx((2 * 1.0 + 4.0) / 3)
    assert train_means["Loss/total_loss"] == pytest.approx((2 * 1.75 + 6.25) / 3)
    eval_means = {tag: value + 1.0 for tag, value in train_means.items()}
    eval_means["Loss/regularization_loss"] = train_means["Loss/regularization_loss"]
    gaps = loss_gap.gaps(eval_means, train_means, eval_map_50=0.6, train_map_50=0.9)
    assert gaps["Gap/eval_minus_train_total_loss"] == pytest.approx(1.0)
    assert gaps["Gap/eval_minus_train_classification_loss"] == pytest.approx(1.0)
    assert gaps["Gap/eval_minus_train_localization_loss"] == pytest.approx(1.0)
    assert gaps["Gap/eval_minus_train_regularization_loss"] == 0.0
    assert gaps["Gap/train_minus_eval_mAP@.50IOU"] == pytest.approx(0.3)
    assert set(gaps) == set(loss_gap.LOSS_GAPS) | {loss_gap.MAP_GAP}
    assert loss_gap.MAP_GAP not in loss_gap.gaps(eval_means, train_means, UNDEFINED, 0.9)
    with pytest.raises(ValueError, match="total_loss"):
        loss_gap.gaps({"Loss/classification_loss": 1.0}, train_means, 0.5, 0.5)
    with pytest.raises(ValueError, match="nan"):
        train.add({tag: float("nan") for tag in loss_gap.LOSS_TAGS}, batch_size=1)
