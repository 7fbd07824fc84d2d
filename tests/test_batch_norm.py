"""FusedBatchNormalization against Keras 3's own BatchNormalization, in training and inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfodkit.model.batch_norm import FusedBatchNormalization


def _pair(**kwargs) -> tuple[keras.layers.BatchNormalization, FusedBatchNormalization]:
    """A Keras layer and a fused one with the same random gamma, beta and moving statistics."""
    rng = np.random.default_rng(1)
    reference = keras.layers.BatchNormalization(**kwargs)
    fused = FusedBatchNormalization(**kwargs)
    for layer in (reference, fused):
        layer.build((None, 5, 6, 4))
    for ref_var, fused_var in zip(reference.weights, fused.weights):
        assert ref_var.name == fused_var.name
        value = rng.uniform(0.5, 1.5, ref_var.shape).astype(np.float32)
        ref_var.assign(value)
        fused_var.assign(value)
    return reference, fused


@pytest.mark.parametrize("kwargs", [{"momentum": 0.97}, {"momentum": 0.9, "scale": False}, {"center": False}])
def test_inference_matches_keras(kwargs):
    reference, fused = _pair(**kwargs)
    images = tf.constant(np.random.default_rng(2).normal(3.0, 2.0, (3, 5, 6, 4)).astype(np.float32))
    np.testing.assert_allclose(fused(images, training=False), reference(images, training=False), atol=1e-5)


def test_training_normalises_with_batch_moments_and_moves_statistics_with_bessel_correction():
    reference, fused = _pair(momentum=0.9)
    images = np.random.default_rng(3).normal(3.0, 2.0, (3, 5, 6, 4)).astype(np.float32)
    before_mean = fused.moving_mean.numpy().copy()
    before_variance = fused.moving_variance.numpy().copy()
    outputs = fused(tf.constant(images), training=True)
    np.testing.assert_allclose(outputs, reference(tf.constant(images), training=True), atol=1e-4)
    values = images.reshape(-1, 4)
    np.testing.assert_allclose(fused.moving_mean, 0.9 * before_mean + 0.1 * values.mean(0), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, 0.9 * before_variance + 0.1 * values.var(0, ddof=1), rtol=1e-4)


def test_gradients_match_keras():
    reference, fused = _pair(momentum=0.99)
    images = tf.constant(np.random.default_rng(4).normal(0.0, 1.0, (2, 5, 6, 4)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(5).normal(size=(2, 5, 6, 4)).astype(np.float32))
    gradients = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(layer(images, training=True) * weights)
        gradients.append(tape.gradient(loss, [images, layer.gamma, layer.beta]))
    for ours, theirs in zip(gradients[1], gradients[0]):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_frozen_layer_uses_moving_statistics_even_when_training():
    reference, fused = _pair(momentum=0.9)
    fused.trainable = False
    images = tf.constant(np.random.default_rng(6).normal(3.0, 2.0, (2, 5, 6, 4)).astype(np.float32))
    moving_mean = fused.moving_mean.numpy().copy()
    np.testing.assert_allclose(fused(images, training=True), reference(images, training=False), atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean, moving_mean)


def test_inputs_the_fused_kernel_cannot_take_go_to_keras():
    layer = FusedBatchNormalization()
    vectors = tf.constant(np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32))
    outputs = layer(vectors, training=True)
    np.testing.assert_allclose(outputs.numpy().mean(0), 0.0, atol=1e-5)
