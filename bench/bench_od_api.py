"""The real TF2 OD API and tfodkit side by side on the OD API's own configs, in one process: training steps/s
(alternating rounds), one-image detection time, anchors and parameters.

The OD API is tensorflow/models' research/object_detection (TF2 code of March 2022) as PyPI ships it in
`object-detection-by-ovi` 0.0.1. `make bench` installs it, with tf-slim and lvis and none of their declared
dependencies, into `.venv/od_api` (bench/od_api-requirements.txt). It runs on tf_keras (TF_USE_LEGACY_KERAS=1,
as it ran on TF 2.20 for ../shared/reference/od_api_tf2). Before anything is timed, each reference checkpoint is
restored into the copy's model and must reproduce the reference's box encodings and class logits
(od_api_outputs.npz): the code timed is the code that made the reference. Four imports that the OD API makes at
module level but its SSD path never calls are replaced by empty modules: OpenCV (lvis's visualiser),
tensorflow_io (DeepMAC), Model Garden's `official` (EfficientDet), and `tf.compat.v1.estimator` (gone since
TF 2.16; the OD API uses it only for a TF1 serving input receiver).

Training: the OD API's own `model_lib_v2.eager_train_step` under `strategy.run`, 10 steps per tf.function call
over an iterator, as its `train_loop` runs it; tfodkit's `make_train_step` with 10 steps per call. Both on the
same synthetic batch (`bench_models.synthetic_batch`: random images, 3 random boxes each, padded to the config's
max_number_of_boxes), the OD API's images preprocessed beforehand as its input pipeline does. After a warm-up
call of each, rounds alternate between the two (the order flips every round) so both see the same machine load.
Detection: the OD API's preprocess + predict + postprocess in one tf.function (what its exported SavedModel runs)
against tfodkit's `model.detect`, one image, median of repeated calls alternating between the two. Both share
the process, so both run with tfodkit's TensorFlow settings (oneDNN on, grappler's remapper off;
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import os
import platform
import statistics
import sys
import types
from dataclasses import dataclass
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf_keras, the Keras the OD API was written for

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "od_api_tf2"
OD_API_SITE = Path(sys.prefix) / "od_api"
sys.path.insert(0, str(ROOT))

from bench.quiet_tensorflow import tf  # noqa: E402  (tfodkit's TensorFlow settings, start-up noise kept off stderr)
import numpy as np  # noqa: E402

from bench.bench_models import (  # noqa: E402
    STEPS_PER_CALL, compiled_detect, compiled_train_step, median_seconds, parameter_count, synthetic_batch,
    timed_train_calls)
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit.config.loader import parse_pipeline_text  # noqa: E402

MODELS = ("ssd_mobilenet_v2_320x320_coco17_tpu-8", "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8")
# The OD API's training rate recorded in ../shared/reference/od_api_tf2/README.md (batch 8), on the machine
# that made the reference, which need not be this one.
RECORDED_RATES = {MODELS[0]: 3.16, MODELS[1]: 2.87}
UNUSED_IMPORTS = ("cv2", "tensorflow_io", "official")
DETECT_CALLS = 20  # timed detections a side
FIDELITY_TOLERANCE = 1e-3  # max |difference| from the reference outputs for the copy to count as the same code


class _EmptyModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an empty package for each of UNUSED_IMPORTS and their submodules."""

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in UNUSED_IMPORTS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_od_api() -> types.SimpleNamespace:
    """The OD API's modules this benchmark calls, imported from OD_API_SITE."""
    if not (OD_API_SITE / "object_detection").is_dir():
        raise SystemExit(f"the OD API is not installed in {OD_API_SITE}: run `make bench`, which installs "
                         "bench/od_api-requirements.txt there")
    if not REFERENCE.is_dir():
        raise SystemExit(f"{REFERENCE} is missing: the OD API's configs and checkpoints are read from there")
    sys.path.insert(0, str(OD_API_SITE))
    sys.meta_path.insert(0, _EmptyModules())
    tf.compat.v1.estimator = types.ModuleType("estimator")  # imported by object_detection.inputs, never used here
    from object_detection import model_lib_v2
    from object_detection.builders import model_builder, optimizer_builder
    from object_detection.core import standard_fields
    from object_detection.utils import config_util

    return types.SimpleNamespace(model_lib_v2=model_lib_v2, model_builder=model_builder,
                                 optimizer_builder=optimizer_builder, fields=standard_fields.InputDataFields,
                                 config_util=config_util)


@dataclass
class Row:
    """One reference model's figures."""

    model: str
    encoding_error: float
    logit_error: float
    anchors: tuple[int, int]
    params: tuple[int, int]
    steps_per_s: tuple[float, float]
    detect_one_ms: tuple[float, float]


class OdApiTrainer:
    """The OD API's model, optimizer and compiled training call (STEPS_PER_CALL steps) for one pipeline.config."""

    def __init__(self, od, configs: dict, batch: tuple[dict, dict]) -> None:
        train_config = configs["train_config"]
        model = od.model_builder.build(configs["model"], is_training=True)
        global_step = tf.Variable(0, trainable=False, dtype=tf.int64, name="global_step")
        optimizer, _ = od.optimizer_builder.build(train_config.optimizer, global_step=global_step)
        strategy = tf.distribute.get_strategy()
        features, labels = batch
        num_classes = configs["model"].ssd.num_classes
        images, true_shapes = model.preprocess(tf.constant(features["image"]))
        weights = labels["weights"]
        od_features = {od.fields.image: images, od.fields.true_image_shape: true_shapes}
        od_labels = {
            od.fields.num_groundtruth_boxes: (weights > 0).sum(axis=1).astype(np.int32),
            od.fields.groundtruth_boxes: labels["boxes"],
            od.fields.groundtruth_classes: np.eye(num_classes, dtype=np.float32)[labels["classes"] - 1]
            * weights[..., None],
            od.fields.groundtruth_weights: weights,
        }
        self.batches = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors((od_features, od_labels)).repeat()))
        clip = train_config.gradient_clipping_by_norm or None

        def train_step_fn(features, labels):
            losses = od.model_lib_v2.eager_train_step(
                model, features, labels, train_config.unpad_groundtruth_tensors, optimizer,
                training_step=global_step, add_regularization_loss=train_config.add_regularization_loss,
                clip_gradients_value=clip, num_replicas=strategy.num_replicas_in_sync)
            global_step.assign_add(1)
            return losses

        def sample_and_train(iterator):
            features, labels = next(iterator)
            per_replica = strategy.run(train_step_fn, args=(features, labels))
            return od.model_lib_v2.reduce_dict(strategy, per_replica, tf.distribute.ReduceOp.SUM)

        @tf.function
        def train_call(iterator):
            for _ in tf.range(STEPS_PER_CALL - 1):
                with tf.name_scope(""):
                    sample_and_train(iterator)
            return sample_and_train(iterator)

        self.step = train_call
        float(self.step(self.batches)["Loss/total_loss"])  # trace and warm up

    def run(self, calls: int) -> float:
        """Seconds taken by `calls` calls of STEPS_PER_CALL steps."""
        return timed_train_calls(self.step, self.batches, calls)


def od_api_inference(od, configs: dict, folder: Path):
    """The OD API's compiled detect function (its inference model with the reference checkpoint), that model's
    max absolute differences from the reference's box encodings and class logits, its anchor count and its
    parameter count (every variable, batch-norm moving statistics included, as its checkpoint lists them)."""
    model = od.model_builder.build(configs["model"], is_training=False)
    outputs = np.load(folder / "od_api_outputs.npz")
    images, shapes = model.preprocess(tf.constant(outputs["input_uint8"], tf.float32))
    model.predict(images, shapes)  # create the variables
    tf.train.Checkpoint(model=model).restore(str(folder / "checkpoint" / "ckpt-0")).expect_partial()
    predictions = model.predict(images, shapes)
    encoding_error = float(np.abs(predictions["box_encodings"].numpy() - outputs["box_encodings"]).max())
    logit_error = float(np.abs(predictions["class_predictions_with_background"].numpy()
                               - outputs["class_predictions_with_background"]).max())

    @tf.function
    def detect(images):
        preprocessed, true_shapes = model.preprocess(images)
        return model.postprocess(model.predict(preprocessed, true_shapes), true_shapes)

    if encoding_error > FIDELITY_TOLERANCE or logit_error > FIDELITY_TOLERANCE:
        raise SystemExit(f"{folder.name}: the OD API in {OD_API_SITE} does not reproduce the reference outputs "
                         f"(box encodings off by {encoding_error:.2e}, logits by {logit_error:.2e})")
    return detect, encoding_error, logit_error, model.anchors.num_boxes_static(), parameter_count(model)


def measure(od, name: str, batch_size: int, calls: int, rounds: int) -> Row:
    """Fidelity check, then both trainers and both detectors on the reference config `name`."""
    folder = REFERENCE / name
    configs = od.config_util.get_configs_from_pipeline_file(str(folder / "pipeline.config"))
    config = parse_pipeline_text((folder / "pipeline.config").read_text(encoding="utf-8"), name)
    od_detect, encoding_error, logit_error, od_anchors, od_params = od_api_inference(od, configs, folder)
    ours = compiled_train_step(config, batch_size)
    theirs = OdApiTrainer(od, configs, synthetic_batch(config, batch_size))
    trainers = {"od_api": theirs, "tfodkit": ours}
    seconds = {"od_api": 0.0, "tfodkit": 0.0}
    for round_index in range(rounds):
        for who in sorted(trainers, reverse=round_index % 2 == 1):
            seconds[who] += trainers[who].run(calls)
    steps = rounds * calls * STEPS_PER_CALL
    one = tf.constant(ours.features["image"][:1])
    detectors = {"od_api": od_detect, "tfodkit": compiled_detect(ours.model)}
    for detect in detectors.values():
        median_seconds(lambda: detect(one), 2)  # warm-up
    call_seconds = {who: [] for who in detectors}
    for call_index in range(DETECT_CALLS):  # alternating, so a machine that slows down slows both alike
        for who in sorted(detectors, reverse=call_index % 2 == 1):
            call_seconds[who].append(median_seconds(lambda: detectors[who](one), 1))
    return Row(
        model=name, encoding_error=encoding_error, logit_error=logit_error,
        anchors=(od_anchors, int(ours.model.anchors.shape[0])),
        params=(od_params, parameter_count(ours.model)),
        steps_per_s=(steps / seconds["od_api"], steps / seconds["tfodkit"]),
        detect_one_ms=tuple(1000 * statistics.median(call_seconds[who]) for who in ("od_api", "tfodkit")),
    )


def report(rows: list[Row], batch_size: int, calls: int, rounds: int) -> str:
    """The Markdown section: method, one table, the machine."""
    lines = [
        "## tfodkit beside the real OD API",
        "",
        "`make bench` (= `.venv/bin/python bench/bench_od_api.py`): the OD API's own configs "
        "(`../shared/reference/od_api_tf2/*/pipeline.config`, num_classes 2), each built by the real TF2 OD API "
        "(tensorflow/models research/object_detection as PyPI's `object-detection-by-ovi` 0.0.1 ships it, on "
        "tf_keras) and by tfodkit, in one process. Fidelity: the reference checkpoint restored into the OD API's "
        "model, max |difference| from the reference's box encodings and logits (0 means the copy computes what "
        f"made the reference). Training: batch {batch_size}, {STEPS_PER_CALL} steps per compiled call on one "
        f"synthetic batch (3 random boxes an image), {rounds} alternating rounds of {calls} calls each after a "
        "warm-up call of each; the OD API runs its own `model_lib_v2.eager_train_step`. Detect: one image, "
        "preprocess + network + postprocess (the OD API's as its export runs them, tfodkit's `model.detect`), "
        f"median of {DETECT_CALLS} calls each, the two alternating. Ratio: tfodkit / OD API for steps/s (higher is better), OD API / tfodkit for "
        "latency (higher is better). The last column is the OD API's rate recorded in the reference README, "
        "measured on the machine that made the reference.",
        "",
        "| OD API config | fidelity (encodings / logits) | anchors OD API / tfodkit | parameters OD API / tfodkit | "
        "OD API steps/s | tfodkit steps/s | ratio | OD API detect 1 image ms | tfodkit ms | ratio | "
        "OD API steps/s in the reference README |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        theirs_rate, ours_rate = row.steps_per_s
        theirs_ms, ours_ms = row.detect_one_ms
        lines.append(
            f"| {row.model} | {row.encoding_error:.1e} / {row.logit_error:.1e} | {row.anchors[0]} / {row.anchors[1]}"
            f" | {row.params[0]:,} / {row.params[1]:,} | {theirs_rate:.2f} | {ours_rate:.2f} | "
            f"{ours_rate / theirs_rate:.2f} | {theirs_ms:.1f} | {ours_ms:.1f} | {theirs_ms / ours_ms:.2f} | "
            f"{RECORDED_RATES[row.model]} |"
        )
    lines += ["", f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}), TensorFlow "
              f"{tf.__version__}, Python {platform.python_version()}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2, help=f"calls of {STEPS_PER_CALL} steps per round (default 2)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()
    od = import_od_api()
    rows = []
    for name in MODELS:
        rows.append(measure(od, name, args.batch_size, args.calls, args.rounds))
        print(rows[-1], file=sys.stderr, flush=True)
    publish(report(rows, args.batch_size, args.calls, args.rounds), args.docs, "bench_od_api")
    return 0


if __name__ == "__main__":
    sys.exit(main())
