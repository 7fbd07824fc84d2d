"""Optimizers and learning-rate schedules from train_config, checked against the OD API's formulas."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from tfodkit.config.loader import parse_pipeline_text
from tfodkit.config.templates import template_text
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_optimizer_pb2, pipeline_train_pb2
from tfodkit.training.optimizers import MomentumSGD, build_learning_rate, build_optimizer, gradient_clip_norm


def _rate(text: str):
    config = text_format.Parse(text, pipeline_optimizer_pb2.LearningRate())
    return build_learning_rate(config, "train_config.optimizer.momentum_optimizer.learning_rate")


def _values(schedule, steps):
    return [float(schedule(step)) for step in steps]


def _optimizer(text: str) -> keras.optimizers.Optimizer:
    return build_optimizer(text_format.Parse(text, pipeline_optimizer_pb2.Optimizer()))


def test_cosine_warmup_hold_then_decay_to_zero():
    base, warm, warmup, hold, total = 0.04, 0.01, 100, 50, 1000
    schedule = _rate(f"""cosine_decay_learning_rate {{ learning_rate_base: {base} total_steps: {total}
        warmup_learning_rate: {warm} warmup_steps: {warmup} hold_base_rate_steps: {hold} }}""")

    def expected(step: int) -> float:
        if step > total:
            return 0.0
        if step < warmup:
            return warm + (base - warm) * step / warmup
        if step <= warmup + hold:
            return base
        return 0.5 * base * (1 + math.cos(math.pi * (step - warmup - hold) / (total - warmup - hold)))

    steps = [0, 1, 50, 99, 100, 130, 150, 151, 400, 575, 999, 1000, 1001, 5000]
    assert _values(schedule, steps) == pytest.approx([expected(s) for s in steps], rel=1e-5, abs=1e-9)


def test_cosine_of_the_template_without_hold():
    config = parse_pipeline_text(template_text("ssd_mobilenet_v2_320x320"), "template")
    learning_rate = config.train_config.optimizer.momentum_optimizer.learning_rate
    cosine = learning_rate.cosine_decay_learning_rate
    schedule = build_learning_rate(learning_rate, "lr")
    # At the end of warm-up the cosine starts from the base rate; half-way through the decay it is half of it.
    middle = cosine.warmup_steps + (cosine.total_steps - cosine.warmup_steps) // 2
    assert float(schedule(0)) == pytest.approx(cosine.warmup_learning_rate, rel=1e-6)
    assert float(schedule(cosine.warmup_steps)) == pytest.approx(cosine.learning_rate_base, rel=1e-6)
    assert float(schedule(middle)) == pytest.approx(cosine.learning_rate_base / 2, rel=1e-3)
    assert float(schedule(cosine.total_steps)) == pytest.approx(0.0, abs=1e-9)


def test_exponential_decay_staircase_burnin_and_floor():
    schedule = _rate("""exponential_decay_learning_rate { initial_learning_rate: 0.1 decay_steps: 10
        decay_factor: 0.5 staircase: true burnin_learning_rate: 0.02 burnin_steps: 5 min_learning_rate: 0.001 }""")
    expected = {0: 0.02, 4: 0.02, 5: 0.1, 14: 0.1, 15: 0.05, 25: 0.025, 34: 0.025, 105: 0.1 * 0.5**10}
    expected = {step: max(value, 0.001) for step, value in expected.items()}
    assert _values(schedule, expected) == pytest.approx(list(expected.values()), rel=1e-5)


def test_exponential_decay_smooth_without_burnin_uses_the_initial_rate():
    schedule = _rate("""exponential_decay_learning_rate { initial_learning_rate: 0.1 decay_steps: 10
        decay_factor: 0.5 staircase: false }""")
    steps = [0, 3, 10, 17, 40]
    assert _values(schedule, steps) == pytest.approx([0.1 * 0.5 ** (s / 10) for s in steps], rel=1e-5)


def test_manual_steps_with_and_without_warmup():
    text = """manual_step_learning_rate {{ initial_learning_rate: 0.001 warmup: {warmup}
        schedule {{ step: 10 learning_rate: 0.011 }} schedule {{ step: 20 learning_rate: 0.0005 }} }}"""
    plain, warm = _rate(text.format(warmup="false")), _rate(text.format(warmup="true"))
    steps = [0, 5, 9, 10, 19, 20, 1000]
    assert _values(plain, steps) == pytest.approx([0.001, 0.001, 0.001, 0.011, 0.011, 0.0005, 0.0005])
    ramp = [0.001 + (0.011 - 0.001) * s / 10 for s in (0, 5, 9)]
    assert _values(warm, steps) == pytest.approx(ramp + [0.011, 0.011, 0.0005, 0.0005])


def test_constant_rate():
    assert _values(_rate("constant_learning_rate { learning_rate: 0.003 }"), [0, 7, 10**6]) == pytest.approx(
        [0.003] * 3)


@pytest.mark.parametrize("text, field", [
    ("manual_step_learning_rate { initial_learning_rate: 0.1 }", "manual_step_learning_rate.schedule"),
    ("manual_step_learning_rate { schedule { step: 0 learning_rate: 0.1 } }", "schedule[0].step"),
    ("manual_step_learning_rate { schedule { step: 5 } schedule { step: 5 } }", "schedule[1].step"),
    ("cosine_decay_learning_rate { total_steps: 100 warmup_steps: 100 }", "cosine_decay_learning_rate.total_steps"),
    ("exponential_decay_learning_rate { decay_steps: 0 }", "exponential_decay_learning_rate.decay_steps"),
    ("", ": one of constant_learning_rate"),
])
def test_bad_schedules_name_the_field(text, field):
    with pytest.raises(TfodkitError, match=r"train_config\.optimizer\.momentum_optimizer\.learning_rate.*"
                                           + re.escape(field)):
        _rate(text)


def test_optimizers_carry_the_config_values():
    lr = "learning_rate { constant_learning_rate { learning_rate: 0.01 } }"
    sgd = _optimizer(f"momentum_optimizer {{ {lr} momentum_optimizer_value: 0.8 }} use_moving_average: false")
    assert isinstance(sgd, MomentumSGD) and sgd.momentum == pytest.approx(0.8) and not sgd.use_ema
    adam = _optimizer(f"adam_optimizer {{ {lr} epsilon: 0.5 }} use_moving_average: false")
    assert isinstance(adam, keras.optimizers.Adam) and adam.epsilon == pytest.approx(0.5)
    rms = _optimizer(f"rms_prop_optimizer {{ {lr} decay: 0.7 momentum_optimizer_value: 0.6 epsilon: 0.2 }}")
    assert isinstance(rms, keras.optimizers.RMSprop)
    assert (rms.rho, rms.momentum, rms.epsilon) == pytest.approx((0.7, 0.6, 0.2))
    # use_moving_average defaults to true in the proto, with decay 0.9999.
    assert rms.use_ema and rms.ema_momentum == pytest.approx(0.9999)
    assert float(sgd.learning_rate) == pytest.approx(0.01)


def _compiled_apply(optimizer, variable):
    return tf.function(lambda gradient: optimizer.apply_gradients([(gradient, variable)]))


@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_momentum_update_equals_keras_sgd(nesterov):
    """MomentumSGD's fused kernel gives Keras 3's own SGD results, step after step, inside a tf.function."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 5)).astype(np.float32)
    gradients = [rng.normal(size=(3, 5)).astype(np.float32) for _ in range(4)]
    schedule = _rate("cosine_decay_learning_rate { learning_rate_base: 0.2 total_steps: 10 warmup_steps: 2 "
                     "warmup_learning_rate: 0.05 }")
    results = []
    for optimizer in (MomentumSGD(schedule, momentum=0.9, nesterov=nesterov),
                      keras.optimizers.SGD(schedule, momentum=0.9, nesterov=nesterov)):
        variable = keras.Variable(start)
        optimizer.build([variable])
        apply = _compiled_apply(optimizer, variable)
        for gradient in gradients:
            apply(tf.constant(gradient))
        graph = apply.get_concrete_function(tf.TensorSpec(start.shape, tf.float32)).graph
        results += [{op.type for op in graph.get_operations()}, (variable.numpy(), optimizer.momentums[0].numpy())]
    fused_ops, (fused, fused_momentum), reference_ops, (reference, reference_momentum) = results
    assert "ResourceApplyKerasMomentum" in fused_ops and "ResourceApplyKerasMomentum" not in reference_ops
    assert not np.allclose(fused, start)
    np.testing.assert_allclose(fused, reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused_momentum, reference_momentum, rtol=1e-6, atol=1e-7)


def test_moving_average_follows_the_decay():
    optimizer = _optimizer("""momentum_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.5 } }
        momentum_optimizer_value: 0.0 } use_moving_average: true moving_average_decay: 0.9""")
    variable = keras.Variable(1.0)
    optimizer.build([variable])
    average = 1.0
    for gradient in (1.0, -2.0, 0.5):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        value = float(variable.numpy())
        average = value if optimizer.iterations == 1 else 0.9 * average + 0.1 * value
    optimizer.finalize_variable_values([variable])
    assert float(variable.numpy()) == pytest.approx(average, rel=1e-6)


def test_missing_optimizer_and_clip_value():
    with pytest.raises(TfodkitError, match=r"train_config\.optimizer: one of momentum_optimizer"):
        _optimizer("use_moving_average: false")
    train = pipeline_train_pb2.TrainConfig()
    assert gradient_clip_norm(train) is None
    train.gradient_clipping_by_norm = 10.0
    assert gradient_clip_norm(train) == 10.0
