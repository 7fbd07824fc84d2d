"""`faster_rcnn_box_coder`: boxes <-> (ty, tx, th, tw) offsets relative to anchors, scaled as configured."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

EPSILON = 1e-8


def center_size(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """(ycenter, xcenter, height, width) of [..., 4] corner boxes."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height = ymax - ymin
    width = xmax - xmin
    return ymin + height / 2.0, xmin + width / 2.0, height, width


@dataclass(frozen=True)
class FasterRcnnBoxCoder:
    """Encodes and decodes [..., 4] boxes against anchors of the same leading shape (or broadcastable)."""

    y_scale: float = 10.0
    x_scale: float = 10.0
    height_scale: float = 5.0
    width_scale: float = 5.0
    code_size: int = 4

    def encode(self, boxes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Regression targets that move `anchors` onto `boxes`."""
        ycenter_a, xcenter_a, ha, wa = center_size(anchors)
        ycenter, xcenter, h, w = center_size(boxes)
        ha, wa, h, w = ha + EPSILON, wa + EPSILON, h + EPSILON, w + EPSILON
        ty = (ycenter - ycenter_a) / ha * self.y_scale
        tx = (xcenter - xcenter_a) / wa * self.x_scale
        th = tf.math.log(h / ha) * self.height_scale
        tw = tf.math.log(w / wa) * self.width_scale
        return tf.stack([ty, tx, th, tw], axis=-1)

    def decode(self, rel_codes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Corner boxes [..., 4] that `rel_codes` describe relative to `anchors`."""
        ycenter_a, xcenter_a, ha, wa = center_size(anchors)
        ty, tx, th, tw = tf.unstack(rel_codes, axis=-1)
        ty = ty / self.y_scale
        tx = tx / self.x_scale
        th = th / self.height_scale
        tw = tw / self.width_scale
        w = tf.exp(tw) * wa
        h = tf.exp(th) * ha
        ycenter = ty * ha + ycenter_a
        xcenter = tx * wa + xcenter_a
        return tf.stack([ycenter - h / 2.0, xcenter - w / 2.0, ycenter + h / 2.0, xcenter + w / 2.0], axis=-1)
