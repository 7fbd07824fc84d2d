"""Nearest-neighbour upsampling built from stacked copies and one reshape, as the OD API builds it for its FPN."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class NearestNeighborUpsampling(keras.layers.Layer):
    """Each value of an NHWC map repeated `scale` x `scale` times (ops.nearest_neighbor_upsampling of the OD API).

    Stacking `scale` copies along a new width axis, then along a new height axis, and reshaping is what the OD API
    does; TFLite converts it to two PACK ops and a RESHAPE, where Keras' UpSampling2D (a repeat per axis) converts
    to RESHAPE + TILE pairs: two more ops per level of the FPN's top-down pathway, slower on a phone.
    """

    def __init__(self, scale: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        _, height, width, channels = inputs.shape
        dynamic = ops.shape(inputs)
        height = dynamic[1] if height is None else height
        width = dynamic[2] if width is None else width
        net = ops.stack([inputs] * self.scale, axis=3)  # [batch, height, width, scale, channels]
        net = ops.stack([net] * self.scale, axis=2)  # [batch, height, scale, width, scale, channels]
        return ops.reshape(net, (-1, height * self.scale, width * self.scale, channels))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, height, width, channels = input_shape
        scaled = [None if side is None else side * self.scale for side in (height, width)]
        return (batch, *scaled, channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}
