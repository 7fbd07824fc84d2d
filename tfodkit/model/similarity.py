"""`iou_similarity`: intersection over union between two sets of corner boxes."""

from __future__ import annotations

import tensorflow as tf


def area(boxes: tf.Tensor) -> tf.Tensor:
    """Areas of [..., 4] corner boxes."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymax - ymin) * (xmax - xmin)


def iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU of every pair: [..., M, 4] x [..., N, 4] -> [..., M, N] (0 where the union is empty)."""
    ymin1, xmin1, ymax1, xmax1 = (t[..., :, tf.newaxis] for t in tf.unstack(boxes1, axis=-1))
    ymin2, xmin2, ymax2, xmax2 = (t[..., tf.newaxis, :] for t in tf.unstack(boxes2, axis=-1))
    heights = tf.maximum(0.0, tf.minimum(ymax1, ymax2) - tf.maximum(ymin1, ymin2))
    widths = tf.maximum(0.0, tf.minimum(xmax1, xmax2) - tf.maximum(xmin1, xmin2))
    intersections = heights * widths
    unions = area(boxes1)[..., :, tf.newaxis] + area(boxes2)[..., tf.newaxis, :] - intersections
    ratios = tf.math.divide_no_nan(intersections, unions)
    return tf.where(tf.equal(intersections, 0.0), tf.zeros_like(intersections), ratios)
