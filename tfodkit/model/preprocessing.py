"""Image preprocessing before the feature extractor: `fixed_shape_resizer`, then MobileNet scaling to [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

# The OD API resizes with tf.compat.v1.image.resize_images (align_corners=False, no half-pixel centres).
_RESIZE_METHODS = {
    "BILINEAR": tf.compat.v1.image.ResizeMethod.BILINEAR,
    "NEAREST_NEIGHBOR": tf.compat.v1.image.ResizeMethod.NEAREST_NEIGHBOR,
    "BICUBIC": tf.compat.v1.image.ResizeMethod.BICUBIC,
    "AREA": tf.compat.v1.image.ResizeMethod.AREA,
}


def mobilenet_scale(images: tf.Tensor) -> tf.Tensor:
    """Map pixel values [0, 255] to [-1, 1] exactly as the OD API's MobileNet extractors: (2/255) * x - 1."""
    return (2.0 / 255.0) * images - 1.0


@dataclass(frozen=True)
class FixedShapeResizer:
    """Resize every image to height x width (aspect ratio not kept)."""

    height: int = 300
    width: int = 300
    resize_method: str = "BILINEAR"

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """[B, H, W, 3] uint8 or float images -> [B, height, width, 3] float32."""
        images = tf.cast(images, tf.float32)
        return tf.compat.v1.image.resize_images(
            images, [self.height, self.width], method=_RESIZE_METHODS[self.resize_method], align_corners=False
        )


def preprocess(images: tf.Tensor, resizer: FixedShapeResizer) -> tf.Tensor:
    """Resize then scale: the model input the feature extractor sees."""
    return mobilenet_scale(resizer(images))
