"""faster_rcnn_box_coder: hand-computed encodings and an encode/decode round trip."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder


def test_encode_matches_hand_computation() -> None:
    coder = FasterRcnnBoxCoder(10.0, 10.0, 5.0, 5.0)
    anchor = tf.constant([[0.0, 0.0, 0.2, 0.4]])  # centre (0.1, 0.2), size 0.2 x 0.4
    box = tf.constant([[0.05, 0.1, 0.35, 0.5]])  # centre (0.2, 0.3), size 0.3 x 0.4
    code = coder.encode(box, anchor).numpy()[0]
    np.testing.assert_allclose(code, [10 * 0.1 / 0.2, 10 * 0.1 / 0.4, 5 * math.log(1.5), 0.0], atol=1e-5)


def test_round_trip_recovers_boxes() -> None:
    rng = np.random.default_rng(0)
    mins = rng.uniform(0, 0.6, size=(50, 2))
    boxes = np.concatenate([mins, mins + rng.uniform(0.05, 0.4, size=(50, 2))], axis=1).astype(np.float32)
    amins = rng.uniform(0, 0.6, size=(50, 2))
    anchors = np.concatenate([amins, amins + rng.uniform(0.05, 0.4, size=(50, 2))], axis=1).astype(np.float32)
    for coder in (FasterRcnnBoxCoder(), FasterRcnnBoxCoder(1.0, 2.0, 3.0, 4.0)):
        decoded = coder.decode(coder.encode(boxes, anchors), anchors).numpy()
        np.testing.assert_allclose(decoded, boxes, atol=1e-5)


def test_zero_code_decodes_to_the_anchor_in_batches() -> None:
    anchors = tf.constant([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    decoded = FasterRcnnBoxCoder().decode(tf.zeros([3, 2, 4]), anchors[tf.newaxis]).numpy()
    assert decoded.shape == (3, 2, 4)
    np.testing.assert_allclose(decoded[2], anchors.numpy(), atol=1e-7)
