"""Score conversion and batch multiclass NMS on hand-made boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder
from tfodkit.model.postprocessing import DETECTION_KEYS, NmsConfig, convert_scores, postprocess

ANCHORS = tf.constant(
    [[0.1, 0.1, 0.3, 0.3], [0.11, 0.1, 0.31, 0.3], [0.6, 0.6, 0.8, 0.8], [0.9, 0.9, 1.2, 1.2]], tf.float32
)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _run(scores: list[list[float]], config: NmsConfig) -> dict[str, np.ndarray]:
    """Zero box encodings (detections are the anchors); scores [anchor][class] including background column 0."""
    logits = tf.constant([[[_logit(p) for p in row] for row in scores]], tf.float32)
    out = postprocess(tf.zeros([1, 4, 4]), logits, ANCHORS, FasterRcnnBoxCoder(), config, "SIGMOID")
    return {key: value.numpy()[0] for key, value in out.items()}


def test_overlapping_box_of_the_same_class_is_suppressed() -> None:
    out = _run([[0.1, 0.9, 0.2], [0.1, 0.8, 0.7], [0.1, 0.05, 0.6], [0.1, 0.01, 0.01]], NmsConfig(0.3, 0.5, 10, 10))
    assert set(out) == set(DETECTION_KEYS)
    # class 1: anchor 0 (0.9) suppresses anchor 1 (0.8); class 2: anchor 1 (0.7) and anchor 2 (0.6) survive.
    assert out["num_detections"] == 3
    np.testing.assert_allclose(out["detection_scores"][:4], [0.9, 0.7, 0.6, 0.0], atol=1e-6)
    np.testing.assert_array_equal(out["detection_classes"][:3], [1, 2, 2])  # 1-based label ids
    np.testing.assert_array_equal(out["detection_anchor_indices"][:3], [0, 1, 2])
    np.testing.assert_allclose(out["detection_boxes"][0], ANCHORS[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(out["detection_multiclass_scores"][1], [0.1, 0.8, 0.7], atol=1e-6)
    assert out["detection_boxes"].shape == (10, 4)
    np.testing.assert_array_equal(out["detection_boxes"][3:], 0)


def test_score_threshold_and_total_limit() -> None:
    scores = [[0.1, 0.9, 0.2], [0.1, 0.8, 0.7], [0.1, 0.05, 0.6], [0.1, 0.01, 0.01]]
    out = _run(scores, NmsConfig(0.65, 0.5, 10, 10))
    np.testing.assert_allclose(out["detection_scores"][:2], [0.9, 0.7], atol=1e-6)
    assert out["num_detections"] == 2
    capped = _run(scores, NmsConfig(0.3, 0.5, 2, 2))
    assert capped["num_detections"] == 2 and capped["detection_scores"].shape == (2,)


def test_boxes_are_clipped_to_the_image() -> None:
    out = _run([[0.1, 0.01, 0.01], [0.1, 0.01, 0.01], [0.1, 0.01, 0.01], [0.1, 0.95, 0.01]], NmsConfig(0.5, 0.5, 5, 5))
    np.testing.assert_allclose(out["detection_boxes"][0], [0.9, 0.9, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(out["raw_detection_boxes"][3], [0.9, 0.9, 1.2, 1.2], atol=1e-6)


def test_score_converters() -> None:
    logits = tf.constant([[0.0, 2.0]])
    np.testing.assert_allclose(convert_scores(logits, "SIGMOID").numpy(), [[0.5, 1 / (1 + math.exp(-2))]], rtol=1e-6)
    np.testing.assert_allclose(convert_scores(logits, "IDENTITY", 2.0).numpy(), [[0.0, 1.0]])
    np.testing.assert_allclose(convert_scores(logits, "SOFTMAX").numpy().sum(), 1.0, rtol=1e-6)


def test_invalid_nms_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_detections_per_class"):
        NmsConfig(0.0, 0.5, 200, 100)
    with pytest.raises(ValueError, match="iou_threshold"):
        NmsConfig(0.0, 1.5, 10, 100)
