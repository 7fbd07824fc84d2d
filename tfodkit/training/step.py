"""The compiled training step (several optimizer steps per call, under a tf.distribute strategy) and eval step."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from tfodkit.evaluation.loss_gap import LOSS_TAGS
from tfodkit.model.ssd import SSD

LEARNING_RATE_KEY = "learning_rate"


def _replica_losses(model: SSD, features: dict[str, tf.Tensor], labels: dict[str, tf.Tensor],
                    training: bool) -> tuple[dict[str, Any], dict[str, tf.Tensor]]:
    """Forward pass and Loss/* on this replica's share of the batch (targets are assigned in here)."""
    predictions = model(features["image"], training=training)
    losses = model.compute_losses(predictions, labels["boxes"], labels["classes"], labels["weights"])
    return predictions, losses


def make_train_step(
    model: SSD,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    steps_per_call: int,
    clip_gradients_value: float | None,
) -> Callable[[Iterator], dict[str, tf.Tensor]]:
    """A tf.function taking a distributed iterator and running `steps_per_call` optimizer steps on its batches.

    Each step runs under `strategy.run`: every replica computes the Loss/* dict on its share of the batch,
    differentiates Loss/total_loss divided by the number of replicas (so the all-reduced SUM the optimizer
    applies is the gradient of the replicas' mean loss, as in the OD API's TF2 loop), clips those gradients to
    `clip_gradients_value` global norm when it is set (per replica, before aggregation, like the OD API), and
    applies them.

    Returns a dict of scalars: each Loss/* value averaged over the replicas and over the `steps_per_call` steps
    of the call (a NaN or infinite step therefore shows in the result), and "learning_rate", the rate the last
    step of the call used. `model` and `optimizer` must have been created under `strategy.scope()`; the
    optimizer's variables are built here, under that scope, before the first trace.
    """
    if steps_per_call < 1:
        raise ValueError(f"steps_per_call must be at least 1, got {steps_per_call}")
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    replicas = float(strategy.num_replicas_in_sync)

    def replica_step(features: dict[str, tf.Tensor], labels: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        with tf.GradientTape() as tape:
            _, losses = _replica_losses(model, features, labels, training=True)
            scaled_total = losses["Loss/total_loss"] / replicas
        variables = model.trainable_variables
        gradients = tape.gradient(scaled_total, variables)
        if clip_gradients_value:
            gradients, _ = tf.clip_by_global_norm(gradients, clip_gradients_value)
        optimizer.apply_gradients(zip(gradients, variables))
        return {**losses, LEARNING_RATE_KEY: learning_rate}

    @tf.function
    def train_step(iterator: Iterator) -> dict[str, tf.Tensor]:
        # One loop body, so the model is traced and optimised once whatever steps_per_call is.
        sums = {key: tf.constant(0.0) for key in LOSS_TAGS}
        learning_rate = tf.constant(0.0)
        for _ in tf.range(steps_per_call):
            features, labels = next(iterator)
            per_replica = strategy.run(replica_step, args=(features, labels))
            result = {key: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                      for key, value in per_replica.items()}
            learning_rate = result[LEARNING_RATE_KEY]
            sums = {key: sums[key] + result[key] for key in LOSS_TAGS}
        return {**{key: value / steps_per_call for key, value in sums.items()}, LEARNING_RATE_KEY: learning_rate}

    return train_step


def make_eval_step(
    model: SSD, strategy: tf.distribute.Strategy
) -> Callable[[tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]], tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]]:
    """A tf.function: one distributed batch -> (Loss/* in inference mode, postprocessed detections).

    The losses are averaged over the replicas; the detections (see tfodkit.model.postprocessing) are the
    replicas' detections concatenated along the batch axis, in the order of the batch's per-replica shares.
    The batch may be partial (the last evaluation batch): shapes are left dynamic in the batch dimension.
    """

    def replica_eval(features: dict[str, tf.Tensor], labels: dict[str, tf.Tensor]):
        predictions, losses = _replica_losses(model, features, labels, training=False)
        return losses, model.postprocess(predictions)

    @tf.function
    def eval_step(batch: tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]):
        features, labels = batch
        losses, detections = strategy.run(replica_eval, args=(features, labels))
        mean_losses = {key: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                       for key, value in losses.items()}
        gathered = {key: tf.concat(strategy.experimental_local_results(value), axis=0)
                    for key, value in detections.items()}
        return mean_losses, gathered

    return eval_step
