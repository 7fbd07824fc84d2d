"""The compiled train step on real demo batches: loss falls, steps per call, two replicas match one device.

Run as a script (`python tests/test_train_step.py RECORDS OUT.json`) it is the two-logical-CPU half of the
MirroredStrategy test: logical devices must be configured before TensorFlow initialises, hence a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import tensorflow as tf

from tfodkit import inputs
from tfodkit.config.loader import parse_pipeline_text
from tfodkit.config.overrides import apply_overrides
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert
from tfodkit.model.builder import build_ssd
from tfodkit.protos import pipeline_pb2
from tfodkit.training.optimizers import build_optimizer
from tfodkit.training.step import make_eval_step, make_train_step

SIZE = 96  # model input side and a thin backbone keep traces and steps fast
TINY = (
    f"model.ssd.image_resizer.fixed_shape_resizer.height={SIZE}",
    f"model.ssd.image_resizer.fixed_shape_resizer.width={SIZE}",
    "model.ssd.feature_extractor.depth_multiplier=0.35",
    "train_config.batch_size=4",
)


def _make_records(root: Path) -> Path:
    demo_data.write_dataset(root / "demo", num_images=6, seed=5)
    convert(ConvertOptions(images=root / "demo", annotations=root / "demo", out=root / "records",
                           split={"train": 0.67, "val": 0.33}, seed=0, workers=1))
    return root / "records"


def _config(records: Path) -> pipeline_pb2.TrainEvalPipelineConfig:
    text = template_text("ssd_mobilenet_v2_320x320").replace("PATH_TO_BE_CONFIGURED", str(records))
    config = parse_pipeline_text(text, "template")
    apply_overrides(config, TINY)
    del config.train_config.data_augmentation_options[:]  # the same batch for every run
    return config


def _first_batch(config: pipeline_pb2.TrainEvalPipelineConfig) -> tuple[dict, dict]:
    features, labels = next(iter(inputs.train_dataset(config, seed=1)))
    return {"image": features["image"]}, {key: labels[key] for key in ("boxes", "classes", "weights")}


def _repeated(strategy: tf.distribute.Strategy, batch: tuple[dict, dict]):
    return iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_records(tmp_path_factory.mktemp("train_step"))


def test_loss_falls_and_each_call_runs_steps_per_call_updates(records):
    config = _config(records)
    tf.keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = build_ssd(config)
    optimizer = build_optimizer(config.train_config.optimizer)
    step = make_train_step(model, optimizer, strategy, steps_per_call=5, clip_gradients_value=None)
    features, labels = _first_batch(config)
    assert float(tf.reduce_sum(labels["weights"])) > 0  # the demo batch has boxes
    batch = _repeated(strategy, (features, labels))
    cosine = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    totals = []
    for call in range(1, 5):
        result = step(batch)
        assert int(optimizer.iterations) == 5 * call
        last_step = 5 * call - 1  # still inside the warm-up: linear from warmup_learning_rate
        expected_rate = cosine.warmup_learning_rate + (
            cosine.learning_rate_base - cosine.warmup_learning_rate) * last_step / cosine.warmup_steps
        assert float(result["learning_rate"]) == pytest.approx(expected_rate, rel=1e-5)
        parts = sum(float(result[key]) for key in
                    ("Loss/localization_loss", "Loss/classification_loss", "Loss/regularization_loss"))
        assert float(result["Loss/total_loss"]) == pytest.approx(parts, rel=1e-5)
        totals.append(float(result["Loss/total_loss"]))
    assert all(math.isfinite(total) for total in totals)
    assert totals[-1] < 0.8 * totals[0], totals


def test_clipping_bounds_the_update(records):
    config = _config(records)
    apply_overrides(config, (
        "train_config.optimizer.momentum_optimizer.learning_rate={ constant_learning_rate { learning_rate: 1.0 } }",
        "train_config.optimizer.momentum_optimizer.momentum_optimizer_value=0.0",
    ))
    tf.keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = build_ssd(config)
    before = [variable.numpy() for variable in model.trainable_variables]
    step = make_train_step(model, build_optimizer(config.train_config.optimizer), strategy, 1, 0.01)
    batches = _repeated(strategy, _first_batch(config))
    with _eagerly():  # the same step function, run op by op: no trace to pay for one step
        step(batches)
    change = math.sqrt(sum(float(np.sum((variable.numpy() - old) ** 2))
                           for variable, old in zip(model.trainable_variables, before)))
    assert 0.0099 < change < 0.0101  # plain SGD at rate 1: the step is the clipped gradient, norm 0.01


@contextlib.contextmanager
def _eagerly() -> Iterator[None]:
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


def _one_and_two_replicas(records: Path, out: Path) -> None:
    """Same start weights, same batch: one CPU device vs MirroredStrategy over two logical CPUs."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    config = _config(records)
    # Each replica normalises its loss by the matched anchors of its own share of the batch (as in the OD API),
    # so both shares hold the same two images: the replicas' mean loss then equals the full batch's. Batch norm
    # runs on its moving statistics: batch statistics over two images on the 1x1 feature maps of a 96x96
    # input make the gradients too ill-conditioned for a tight comparison after an update.
    config.model.ssd.freeze_batchnorm = True
    features, labels = _first_batch(config)
    halves = ({"image": tf.concat([features["image"][:2]] * 2, 0)},
              {key: tf.concat([value[:2]] * 2, 0) for key, value in labels.items()})
    results = {}
    weights = None
    for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            model = build_ssd(config)
            if weights is None:
                weights = model.get_weights()
            model.set_weights(weights)
            optimizer = build_optimizer(config.train_config.optimizer)
        step = make_train_step(model, optimizer, strategy, steps_per_call=2, clip_gradients_value=None)
        evaluate = make_eval_step(model, strategy)
        # One device runs the step functions op by op (the reference, without a trace to pay for); two compiled.
        train_batches = _repeated(strategy, halves)
        eval_batch = next(iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors((features, labels)))))
        with _eagerly() if name == "one" else contextlib.nullcontext():
            losses = step(train_batches)
            _, detections = evaluate(eval_batch)
        results[name] = {
            "replicas": strategy.num_replicas_in_sync,
            "losses": {key: float(value) for key, value in losses.items()},
            "weights": [variable.numpy().ravel()[:50].tolist() for variable in model.trainable_variables[::20]],
            "iterations": int(optimizer.iterations.numpy()),
            "detection_scores": detections["detection_scores"].numpy().tolist(),
        }
    out.write_text(json.dumps(results))


def test_two_logical_cpus_match_one_device(records, tmp_path):
    out = tmp_path / "replicas.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, __file__, str(records), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    one, two = results["one"], results["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["iterations"] == two["iterations"] == 2
    for key, value in one["losses"].items():
        assert two["losses"][key] == pytest.approx(value, abs=1e-4), key
    for first, second in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(second, first, atol=1e-5)
    # Evaluation: each replica detects on its own images; the concatenation keeps the batch order.
    assert len(two["detection_scores"]) == 4
    np.testing.assert_allclose(two["detection_scores"], one["detection_scores"], atol=1e-4)


if __name__ == "__main__":
    _one_and_two_replicas(Path(sys.argv[1]), Path(sys.argv[2]))
