"""train_config.optimizer -> a Keras optimizer with the OD API's learning-rate schedules.

The schedules follow object_detection/utils/learning_schedules.py (the OD API's TF2 optimizer builder): each
maps the optimizer's step counter (0 for the first update) to the rate that update uses.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_optimizer_pb2, pipeline_train_pb2


class ConstantRate(keras.optimizers.schedules.LearningRateSchedule):
    """`constant_learning_rate`: the same rate at every step."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        return tf.constant(self.learning_rate, tf.float32)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}


class ExponentialDecayWithBurnin(keras.optimizers.schedules.LearningRateSchedule):
    """`exponential_decay_learning_rate`: `burnin_learning_rate` (the initial rate when 0) for the first
    `burnin_steps` steps, then initial * decay_factor ** ((step - burnin_steps) / decay_steps) (the exponent
    floored when `staircase`), never below `min_learning_rate`."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_factor: float, staircase: bool = True,
                 burnin_learning_rate: float = 0.0, burnin_steps: int = 0, min_learning_rate: float = 0.0) -> None:
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_factor = float(decay_factor)
        self.staircase = bool(staircase)
        self.burnin_learning_rate = float(burnin_learning_rate)
        self.burnin_steps = int(burnin_steps)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        exponent = (step - self.burnin_steps) / self.decay_steps
        if self.staircase:
            exponent = tf.floor(exponent)
        decayed = self.initial_learning_rate * tf.pow(self.decay_factor, exponent)
        burnin = self.burnin_learning_rate or self.initial_learning_rate
        rate = tf.where(step < self.burnin_steps, tf.constant(burnin, tf.float32), decayed)
        return tf.maximum(rate, self.min_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return dict(vars(self))


class ManualStepping(keras.optimizers.schedules.LearningRateSchedule):
    """`manual_step_learning_rate`: rates[i] from boundaries[i - 1] (rates[0] from step 0); with `warmup`,
    the rate before the first boundary rises linearly from rates[0] (step 0) towards rates[1]."""

    def __init__(self, boundaries: list[int], rates: list[float], warmup: bool = False) -> None:
        self.boundaries = [int(b) for b in boundaries]
        self.rates = [float(r) for r in rates]
        self.warmup = bool(warmup)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.int64)
        index = tf.reduce_sum(tf.cast(step >= tf.constant(self.boundaries, tf.int64), tf.int32))
        rate = tf.gather(tf.constant(self.rates, tf.float32), index)
        if self.warmup and self.boundaries:
            first = self.boundaries[0]
            slope = (self.rates[1] - self.rates[0]) / first
            ramp = self.rates[0] + slope * tf.cast(step, tf.float32)
            rate = tf.where(step < first, ramp, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return dict(vars(self))


class CosineDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`cosine_decay_learning_rate`: linear warm-up from `warmup_learning_rate` to `learning_rate_base` over
    `warmup_steps`, the base rate held for `hold_base_rate_steps` more, then a half cosine down to 0 at
    `total_steps`; 0 after it."""

    def __init__(self, learning_rate_base: float, total_steps: int, warmup_learning_rate: float = 0.0,
                 warmup_steps: int = 0, hold_base_rate_steps: int = 0) -> None:
        self.learning_rate_base = float(learning_rate_base)
        self.total_steps = int(total_steps)
        self.warmup_learning_rate = float(warmup_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.hold_base_rate_steps = int(hold_base_rate_steps)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        decay_start = self.warmup_steps + self.hold_base_rate_steps
        progress = (step - decay_start) / float(self.total_steps - decay_start)
        rate = 0.5 * self.learning_rate_base * (1.0 + tf.cos(math.pi * progress))
        if self.hold_base_rate_steps > 0:
            rate = tf.where(step > decay_start, rate, self.learning_rate_base)
        if self.warmup_steps > 0:
            slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
            rate = tf.where(step < self.warmup_steps, self.warmup_learning_rate + slope * step, rate)
        return tf.where(step > self.total_steps, 0.0, rate)

    def get_config(self) -> dict[str, Any]:
        return dict(vars(self))


class MomentumSGD(keras.optimizers.SGD):
    """Keras SGD whose momentum update of a dense gradient is TensorFlow's fused ResourceApplyKerasMomentum
    kernel (the one tf_keras's SGD, and so the OD API, runs): one op per variable instead of Keras 3's four
    element-wise ops and two assignments, with the same formula (accum = momentum * accum - lr * grad;
    var += accum, or with nesterov var += momentum * accum - lr * grad) and the same variables."""

    def update_step(self, gradient: Any, variable: keras.Variable, learning_rate: Any) -> None:
        if self.momentum == 0 or isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable, learning_rate)
            return
        accumulator = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=accumulator.handle,
            lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype),
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=self.nesterov,
        )


def _manual_stepping(config: pipeline_optimizer_pb2.ManualStepLearningRate, path: str) -> ManualStepping:
    if not config.schedule:
        raise TfodkitError(f"{path}.schedule: at least one {{ step learning_rate }} entry is required")
    boundaries = [entry.step for entry in config.schedule]
    if boundaries[0] == 0:
        raise TfodkitError(f"{path}.schedule[0].step: must be positive (step 0 uses initial_learning_rate)")
    for index in range(1, len(boundaries)):
        if boundaries[index] <= boundaries[index - 1]:
            raise TfodkitError(
                f"{path}.schedule[{index}].step: {boundaries[index]} must exceed the previous step "
                f"{boundaries[index - 1]}"
            )
    rates = [config.initial_learning_rate] + [entry.learning_rate for entry in config.schedule]
    return ManualStepping(boundaries, rates, config.warmup)


def _cosine(config: pipeline_optimizer_pb2.CosineDecayLearningRate, path: str) -> CosineDecayWithWarmup:
    if config.warmup_steps + config.hold_base_rate_steps >= config.total_steps:
        raise TfodkitError(
            f"{path}.total_steps: {config.total_steps} leaves no decay steps after warmup_steps "
            f"{config.warmup_steps} + hold_base_rate_steps {config.hold_base_rate_steps}"
        )
    if config.warmup_steps > 0 and config.warmup_learning_rate > config.learning_rate_base:
        raise TfodkitError(f"{path}.warmup_learning_rate: exceeds learning_rate_base")
    return CosineDecayWithWarmup(
        config.learning_rate_base, config.total_steps, config.warmup_learning_rate, config.warmup_steps,
        config.hold_base_rate_steps,
    )


def build_learning_rate(config: pipeline_optimizer_pb2.LearningRate, path: str) -> keras.optimizers.schedules.LearningRateSchedule:
    """A `LearningRate` message (at config path `path`, for messages) -> its schedule."""
    kind = config.WhichOneof("learning_rate")
    field = f"{path}.{kind}"
    if kind == "constant_learning_rate":
        return ConstantRate(config.constant_learning_rate.learning_rate)
    if kind == "exponential_decay_learning_rate":
        exp = config.exponential_decay_learning_rate
        if exp.decay_steps < 1:
            raise TfodkitError(f"{field}.decay_steps: must be at least 1")
        return ExponentialDecayWithBurnin(
            exp.initial_learning_rate, exp.decay_steps, exp.decay_factor, exp.staircase,
            exp.burnin_learning_rate, exp.burnin_steps, exp.min_learning_rate,
        )
    if kind == "manual_step_learning_rate":
        return _manual_stepping(config.manual_step_learning_rate, field)
    if kind == "cosine_decay_learning_rate":
        return _cosine(config.cosine_decay_learning_rate, field)
    raise TfodkitError(f"{path}: one of constant_learning_rate, exponential_decay_learning_rate, "
                       "manual_step_learning_rate or cosine_decay_learning_rate is required")


def build_optimizer(config: pipeline_optimizer_pb2.Optimizer, path: str = "train_config.optimizer") -> keras.optimizers.Optimizer:
    """An `Optimizer` message -> Keras SGD with momentum, Adam or RMSprop, as the OD API's TF2 builder makes them.

    `use_moving_average` (true by default in the proto; the zoo's TF2 configs set it false) turns on Keras' EMA
    of the trainable weights with `moving_average_decay` as its momentum: the averages live in the optimizer
    (and its checkpoint); swapping them into the model for evaluation or export is up to the caller
    (`optimizer.finalize_variable_values(model.trainable_variables)` overwrites the weights with them). The OD
    API's own TF2 builder refuses use_moving_average; its TF1 trainer averaged with the same formula.
    """
    kind = config.WhichOneof("optimizer")
    ema = {"use_ema": config.use_moving_average, "ema_momentum": config.moving_average_decay}
    if config.use_moving_average and not 0.0 <= config.moving_average_decay <= 1.0:
        raise TfodkitError(f"{path}.moving_average_decay: {config.moving_average_decay} is not in [0, 1]")
    if kind == "momentum_optimizer":
        sgd = config.momentum_optimizer
        rate = build_learning_rate(sgd.learning_rate, f"{path}.{kind}.learning_rate")
        return MomentumSGD(rate, momentum=sgd.momentum_optimizer_value, **ema)
    if kind == "adam_optimizer":
        adam = config.adam_optimizer
        rate = build_learning_rate(adam.learning_rate, f"{path}.{kind}.learning_rate")
        return keras.optimizers.Adam(rate, epsilon=adam.epsilon, **ema)
    if kind == "rms_prop_optimizer":
        rms = config.rms_prop_optimizer
        rate = build_learning_rate(rms.learning_rate, f"{path}.{kind}.learning_rate")
        return keras.optimizers.RMSprop(
            rate, rho=rms.decay, momentum=rms.momentum_optimizer_value, epsilon=rms.epsilon, **ema
        )
    raise TfodkitError(f"{path}: one of momentum_optimizer, adam_optimizer or rms_prop_optimizer is required")


def gradient_clip_norm(train_config: pipeline_train_pb2.TrainConfig) -> float | None:
    """`gradient_clipping_by_norm` as the global-norm clip value for make_train_step (None when 0: no clipping)."""
    value = train_config.gradient_clipping_by_norm
    return float(value) if value > 0 else None
