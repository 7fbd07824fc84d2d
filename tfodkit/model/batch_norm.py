"""Keras BatchNormalization computed with TensorFlow's fused kernel, as tf_keras (and so the OD API) did."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfodkit")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose NHWC float32 path is one FusedBatchNormV3 op.

    Keras 3 normalises with separate moment, subtract, multiply and add ops; on CPU that costs about as much as
    the convolutions themselves, and grappler cannot fold it into them at inference. The fused op (and its
    fused gradient) is what tf_keras used. Variables, names and checkpoints are the parent's. In training the
    moving statistics move by `momentum` towards the batch mean and the batch variance with Bessel's
    correction, which is what the fused kernel reports and what the OD API's batch norms averaged. Anything
    the fused kernel cannot do (masks, renorm, other axes or ranks, other dtypes) goes to the parent.
    """

    def _fusable(self, inputs: tf.Tensor, mask: tf.Tensor | None) -> bool:
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and inputs.shape.rank == 4
            and self.axis in (-1, 3)
            and inputs.dtype == tf.float32
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            decay = 1.0 - self.momentum
            self.moving_mean.assign_sub((self.moving_mean - mean) * decay)
            self.moving_variance.assign_sub((self.moving_variance - variance) * decay)
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs
