"""Losses and target assignment on small hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfodkit.model.box_coder import FasterRcnnBoxCoder
from tfodkit.model.losses import HardExampleMiner, SsdLoss, sigmoid_cross_entropy, sigmoid_focal, smooth_l1
from tfodkit.model.matcher import ArgMaxMatcher
from tfodkit.model.target_assigner import TargetAssigner

LN2 = math.log(2.0)


def test_sigmoid_focal_at_zero_logit() -> None:
    logits = tf.zeros([1, 2, 2])
    targets = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])
    weights = tf.constant([[[1.0, 1.0], [2.0, 0.0]]])
    loss = sigmoid_focal(logits, targets, weights, gamma=2.0, alpha=0.25).numpy()
    # p = 0.5 -> cross entropy ln 2, (1 - p_t)^2 = 0.25; alpha 0.25 for positives, 0.75 for negatives.
    np.testing.assert_allclose(loss, [[[0.0625 * LN2, 0.1875 * LN2], [0.375 * LN2, 0.0]]], rtol=1e-6)
    no_alpha = sigmoid_focal(logits, targets, weights, gamma=0.0, alpha=None).numpy()
    np.testing.assert_allclose(no_alpha, sigmoid_cross_entropy(logits, targets, weights).numpy(), rtol=1e-6)
    np.testing.assert_allclose(no_alpha[0, 0], [LN2, LN2], rtol=1e-6)


def test_focal_down_weights_easy_examples() -> None:
    targets = tf.ones([1, 2, 1])
    logits = tf.constant([[[4.0], [-4.0]]])  # easy positive, hard positive
    loss = sigmoid_focal(logits, targets, tf.ones_like(targets), gamma=2.0, alpha=0.25).numpy().ravel()
    p_easy, p_hard = 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(4))
    expected = [0.25 * (1 - p) ** 2 * -math.log(p) for p in (p_easy, p_hard)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_smooth_l1_quadratic_then_linear_and_nan_targets() -> None:
    predictions = tf.constant([[[0.5, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    targets = tf.constant([[[0.0, 0.0, 0.0, float("nan")], [0.0, 0.0, 0.0, 0.0]]])
    loss = smooth_l1(predictions, targets, tf.constant([[1.0, 0.5]]), delta=1.0).numpy()
    np.testing.assert_allclose(loss, [[0.125 + 1.5, 0.5 * 4 * 0.5]], rtol=1e-6)
    np.testing.assert_allclose(smooth_l1(predictions, targets, tf.constant([[1.0, 0.0]]), delta=0.5).numpy()[0, 0],
                               0.5 * (0.5 - 0.25) + 0.5 * (2.0 - 0.25), rtol=1e-6)


def test_ssd_loss_normalisation() -> None:
    box_encodings = tf.constant([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    reg_targets = tf.zeros([1, 2, 4])
    reg_weights = tf.constant([[1.0, 0.0]])  # one match
    logits = tf.zeros([1, 2, 2])
    cls_targets = tf.constant([[[0.0, 1.0], [0.0, 0.0]]])
    cls_weights = tf.ones([1, 2, 2])
    matches = tf.constant([[0, -1]])
    loss = SsdLoss("sigmoid", classification_weight=2.0, localization_weight=3.0, normalize_loc_loss_by_codesize=True)
    out = loss(box_encodings, logits, cls_targets, cls_weights, reg_targets, reg_weights, matches)
    np.testing.assert_allclose(out["Loss/localization_loss"].numpy(), 3.0 * 0.5 / 4, rtol=1e-6)
    np.testing.assert_allclose(out["Loss/classification_loss"].numpy(), 2.0 * 4 * LN2, rtol=1e-6)
    unnormalised = SsdLoss("sigmoid", normalize_loss_by_num_matches=False)(
        box_encodings, logits, cls_targets, cls_weights, reg_targets, 2 * reg_weights, matches
    )
    np.testing.assert_allclose(unnormalised["Loss/localization_loss"].numpy(), 1.0, rtol=1e-6)


def test_hard_example_miner_keeps_top_losses_after_nms() -> None:
    boxes = tf.constant([[[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6], [0.8, 0.8, 0.9, 0.9]]])
    cls = tf.constant([[5.0, 4.0, 3.0, 1.0]])
    loc = tf.constant([[0.5, 0.25, 2.0, 8.0]])
    matches = tf.constant([[-1, -1, -1, 0]])
    miner = HardExampleMiner(num_hard_examples=2, iou_threshold=0.5, loss_type="cls")
    loc_sum, cls_sum = miner(loc, cls, boxes, matches)
    # Box 1 duplicates box 0 and is suppressed; the two hardest left are boxes 0 and 2.
    assert float(cls_sum) == 8.0 and float(loc_sum) == 2.5
    by_loc = HardExampleMiner(num_hard_examples=1, iou_threshold=0.5, loss_type="loc")
    assert [float(v) for v in by_loc(loc, cls, boxes, matches)] == [8.0, 1.0]
    ratio = HardExampleMiner(num_hard_examples=None, iou_threshold=0.5, loss_type="loc", max_negatives_per_positive=1)
    # NMS order by loc loss: 3 (positive), 2, 0 (negatives); one negative allowed per positive.
    assert [float(v) for v in ratio(loc, cls, boxes, matches)] == [10.0, 4.0]


def test_target_assigner_builds_targets_and_weights() -> None:
    anchors = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]])
    boxes = tf.constant([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])  # second row is padding
    classes = tf.constant([[2, 0]])
    weights = tf.constant([[1.0, 0.0]])
    coder = FasterRcnnBoxCoder()
    assigner = TargetAssigner(ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True), coder, num_classes=2)
    targets = assigner.assign(anchors, boxes, classes, weights)
    np.testing.assert_array_equal(targets.matches.numpy(), [[0, -1, -1]])
    np.testing.assert_allclose(targets.cls_targets.numpy(), [[[0, 0, 1], [1, 0, 0], [1, 0, 0]]])
    np.testing.assert_allclose(targets.reg_targets.numpy(), np.zeros([1, 3, 4]), atol=1e-5)
    np.testing.assert_allclose(targets.reg_weights.numpy(), [[1, 0, 0]])
    np.testing.assert_allclose(targets.cls_weights.numpy(), np.ones([1, 3, 3]))
    matcher = ArgMaxMatcher(0.5, 0.5)
    zeros = TargetAssigner(matcher, coder, 2, encode_background_as_zeros=True, negative_class_weight=0.5)
    targets = zeros.assign(anchors, boxes, classes, weights)
    np.testing.assert_allclose(targets.cls_targets.numpy()[0, 1:], np.zeros([2, 3]))
    np.testing.assert_allclose(targets.cls_weights.numpy()[0, :, 0], [1.0, 0.5, 0.5])


def test_regression_target_encodes_the_matched_box() -> None:
    anchors = tf.constant([[0.0, 0.0, 0.4, 0.4]])
    boxes = tf.constant([[[0.0, 0.0, 0.5, 0.4]]])
    coder = FasterRcnnBoxCoder()
    assigner = TargetAssigner(ArgMaxMatcher(0.5, 0.5), coder, 1)
    targets = assigner.assign(anchors, boxes, tf.constant([[1]]), tf.ones([1, 1]))
    np.testing.assert_allclose(targets.reg_targets.numpy()[0, 0], coder.encode(boxes[0], anchors).numpy()[0], atol=1e-6)
    assert targets.reg_targets.numpy()[0, 0, 2] > 0


def test_target_assignment_is_the_same_whatever_the_padding() -> None:
    """Trailing padding rows are dropped before the IoU matrix; a zero-weight row inside is kept and ignored."""
    rng = np.random.default_rng(3)
    corners = rng.uniform(0.0, 0.6, (30, 2)).astype(np.float32)
    anchors = tf.constant(np.concatenate([corners, corners + 0.35], axis=-1))
    real = np.array([[0.1, 0.1, 0.45, 0.5], [0.5, 0.4, 0.9, 0.8], [0.2, 0.6, 0.5, 0.95]], np.float32)
    assigner = TargetAssigner(ArgMaxMatcher(0.5, 0.4, force_match_for_each_row=True), FasterRcnnBoxCoder(), 3)

    def padded(rows: int) -> list[tf.Tensor]:
        boxes = np.zeros((2, rows, 4), np.float32)
        classes = np.zeros((2, rows), np.int32)
        weight = np.zeros((2, rows), np.float32)
        boxes[0, :3], classes[0, :3], weight[0, :3] = real, [1, 2, 3], [1.0, 0.0, 1.0]
        boxes[1, :1], classes[1, :1], weight[1, :1] = real[1:2], [3], 1.0
        return [tf.constant(boxes), tf.constant(classes), tf.constant(weight)]

    tight = assigner.assign(anchors, *padded(3))
    wide = assigner.assign(anchors, *padded(100))
    assert int(tf.reduce_sum(tf.cast(tight.matches >= 0, tf.int32))) > 2
    for field, a, b in zip(tight._fields, tight, wide):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=field)
    # The zero-weight middle row is never a regression target.
    assert not np.any((tight.matches.numpy()[0] == 1) & (tight.reg_weights.numpy()[0] > 0))
    empty = assigner.assign(anchors, tf.zeros([2, 100, 4]), tf.zeros([2, 100], tf.int32), tf.zeros([2, 100]))
    np.testing.assert_array_equal(empty.matches.numpy(), -np.ones([2, 30]))
