"""Benchmark each model template in pipelines/: compiled train-step rate on synthetic input, inference time,
parameter and anchor counts.

The train step is tfodkit.training.step.make_train_step with 10 steps per call on one in-memory batch of random
images with a few random boxes (target assignment included), timed after a first call that traces and warms
up: the compute floor the real training loop is held to. Inference is `model.detect` (preprocess, network,
decode, NMS) compiled once for any batch size, on the same batch and on one image. The OD API's anchor counts follow
from the config (feature map sizes times anchors per location), and one training step of the bare MobileNetV2
backbone is timed with tf_keras (the OD API's Keras) and with tfodkit's Keras 3 backbone, side by side. The real
OD API's training step beside tfodkit's is bench/bench_od_api.py.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quiet_tensorflow import tf  # noqa: E402  (tfodkit's TensorFlow settings, start-up noise kept off stderr)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402

from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit.config.loader import load_pipeline  # noqa: E402
from tfodkit.model.builder import build_ssd  # noqa: E402
from tfodkit.model.mobilenet_v2 import mobilenet_v2_backbone  # noqa: E402
from tfodkit.model.ssd import SSD  # noqa: E402
from tfodkit.protos import pipeline_pb2  # noqa: E402
from tfodkit.training.optimizers import build_optimizer, gradient_clip_norm  # noqa: E402
from tfodkit.training.step import make_train_step  # noqa: E402

STEPS_PER_CALL = 10
BOXES_PER_IMAGE = 3
BACKBONE_SIZE = 300


@dataclass
class Row:
    """One template's measurements."""

    template: str
    size: str
    anchors: int
    od_api_anchors: int
    params: int
    compile_s: float
    steps_per_s: float
    detect_batch_ms: float
    detect_one_ms: float


def od_api_anchor_count(config: pipeline_pb2.TrainEvalPipelineConfig) -> int:
    """Anchors the OD API generates for this config: feature map cells times anchors per cell, per level.

    SSD MobileNetV2 (ssd_anchor_generator) takes feature maps at strides 16 and 32, then halves (rounding up)
    for each further layer; a cell has len(aspect_ratios) boxes plus one when interpolated_scale_aspect_ratio
    is set, except 3 in the lowest layer with reduce_boxes_in_lowest_layer. FPN levels l (multiscale generator)
    are ceil(size / 2**l) wide with len(aspect_ratios) * scales_per_octave boxes a cell.
    """
    ssd = config.model.ssd
    height = ssd.image_resizer.fixed_shape_resizer.height
    width = ssd.image_resizer.fixed_shape_resizer.width
    generator = ssd.anchor_generator
    if generator.HasField("multiscale_anchor_generator"):
        multi = generator.multiscale_anchor_generator
        per_cell = len(multi.aspect_ratios) * multi.scales_per_octave
        return sum(math.ceil(height / 2**level) * math.ceil(width / 2**level) * per_cell
                   for level in range(multi.min_level, multi.max_level + 1))
    gen = generator.ssd_anchor_generator
    per_cell = len(gen.aspect_ratios) + (1 if gen.interpolated_scale_aspect_ratio > 0 else 0)
    sizes = [(math.ceil(height / 16), math.ceil(width / 16)), (math.ceil(height / 32), math.ceil(width / 32))]
    while len(sizes) < gen.num_layers:
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    counts = [h * w * per_cell for h, w in sizes]
    if gen.reduce_boxes_in_lowest_layer:
        counts[0] = sizes[0][0] * sizes[0][1] * 3
    return sum(counts)


def parameter_count(model: keras.Model | tf_keras.Model) -> int:
    """Every model variable's size, batch-norm moving statistics included (as the OD API checkpoint lists them)."""
    return sum(int(np.prod(variable.shape)) for variable in model.weights)


def synthetic_batch(config: pipeline_pb2.TrainEvalPipelineConfig, batch_size: int, seed: int = 0):
    """Random images in [0, 255] with BOXES_PER_IMAGE random boxes each, padded like the input pipeline."""
    rng = np.random.default_rng(seed)
    ssd = config.model.ssd
    height, width = ssd.image_resizer.fixed_shape_resizer.height, ssd.image_resizer.fixed_shape_resizer.width
    max_boxes = config.train_config.max_number_of_boxes
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype(np.float32)
    corners = rng.uniform(0.0, 0.7, (batch_size, BOXES_PER_IMAGE, 2))
    sides = rng.uniform(0.1, 0.3, (batch_size, BOXES_PER_IMAGE, 2))
    boxes = np.zeros((batch_size, max_boxes, 4), np.float32)
    boxes[:, :BOXES_PER_IMAGE] = np.concatenate([corners, corners + sides], axis=-1)
    classes = np.zeros((batch_size, max_boxes), np.int32)
    classes[:, :BOXES_PER_IMAGE] = rng.integers(1, ssd.num_classes + 1, (batch_size, BOXES_PER_IMAGE))
    weights = np.zeros((batch_size, max_boxes), np.float32)
    weights[:, :BOXES_PER_IMAGE] = 1.0
    return {"image": images}, {"boxes": boxes, "classes": classes, "weights": weights}


def median_seconds(function, repeats: int) -> float:
    """Median wall seconds of `repeats` calls (the outputs are fetched, so the work is done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda tensor: tensor.numpy(), function())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_train_calls(step: Callable[[Iterator], dict[str, tf.Tensor]], batches: Iterator, calls: int) -> float:
    """Seconds taken by `calls` calls of a compiled training call (the last Loss/total_loss fetched, so the work
    is done, and required finite)."""
    start = time.perf_counter()
    for _ in range(calls):
        losses = step(batches)
    if not math.isfinite(float(losses["Loss/total_loss"])):
        raise RuntimeError("the loss on synthetic input is not finite")
    return time.perf_counter() - start


@dataclass
class CompiledStep:
    """tfodkit's compiled training call on one synthetic batch, traced and warmed up."""

    model: SSD
    step: Callable[[Iterator], dict[str, tf.Tensor]]
    batches: Iterator
    compile_s: float
    features: dict[str, np.ndarray]

    def run(self, calls: int) -> float:
        """Seconds taken by `calls` calls of STEPS_PER_CALL steps."""
        return timed_train_calls(self.step, self.batches, calls)


def compiled_train_step(config: pipeline_pb2.TrainEvalPipelineConfig, batch_size: int) -> CompiledStep:
    """Build the model and optimizer of `config`, compile `make_train_step` on one synthetic batch and warm it up."""
    strategy = tf.distribute.get_strategy()
    model = build_ssd(config)
    optimizer = build_optimizer(config.train_config.optimizer)
    step = make_train_step(model, optimizer, strategy, STEPS_PER_CALL, gradient_clip_norm(config.train_config))
    features, labels = synthetic_batch(config, batch_size)
    batches = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((features, labels)).repeat()))
    start = time.perf_counter()
    float(step(batches)["Loss/total_loss"])  # trace, compile and warm up
    return CompiledStep(model, step, batches, time.perf_counter() - start, features)


def compiled_detect(model: SSD) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """`model.detect` compiled once for any batch of images at the model's input size."""
    height, width = model.image_size
    return tf.function(model.detect, input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])


def backbone_step_ms(batch_size: int, size: int, calls: int) -> tuple[float, float]:
    """Milliseconds per training step of MobileNetV2 without top at size x size, batch_size random images, loss
    mean(output^2), SGD with momentum: (tf_keras's keras.applications.MobileNetV2, the stack the OD API trains,
    tfodkit's backbone)."""
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32))
    timings = []
    for model, optimizer in (
        (tf_keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None),
         tf_keras.optimizers.SGD(0.01, momentum=0.9)),
        (mobilenet_v2_backbone(1.0, 16, None, (size, size, 3)), keras.optimizers.SGD(0.01, momentum=0.9)),
    ):
        def step(model=model, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(images, training=True)))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        compiled = tf.function(step)
        median_seconds(compiled, 2)
        timings.append(1000 * median_seconds(compiled, calls))
    return timings[0], timings[1]


def measure(template: Path, batch_size: int, calls: int) -> Row:
    """Train-step rate, inference times and counts of one template."""
    config = load_pipeline(template)
    compiled = compiled_train_step(config, batch_size)
    steps_per_s = calls * STEPS_PER_CALL / compiled.run(calls)
    model = compiled.model
    detect = compiled_detect(model)
    height, width = model.image_size
    images = tf.constant(compiled.features["image"])
    one = images[:1]
    median_seconds(lambda: detect(images), 1)
    median_seconds(lambda: detect(one), 1)
    return Row(
        template=template.stem,
        size=f"{height}x{width}",
        anchors=int(model.anchors.shape[0]),
        od_api_anchors=od_api_anchor_count(config),
        params=parameter_count(model),
        compile_s=compiled.compile_s,
        steps_per_s=steps_per_s,
        detect_batch_ms=1000 * median_seconds(lambda: detect(images), 5),
        detect_one_ms=1000 * median_seconds(lambda: detect(one), 20),
    )


def report(rows: list[Row], backbone_ms: tuple[float, float], batch_size: int, calls: int) -> str:
    """The Markdown section: method, the template table, the backbone line."""
    lines = [
        "## Models",
        "",
        f"`make bench` (= `.venv/bin/python bench/bench_models.py`): each template in `pipelines/` at batch "
        f"{batch_size} on this CPU. Train step: `make_train_step` with {STEPS_PER_CALL} steps per compiled call "
        f"(forward, target assignment, losses, backward, optimizer update) on one in-memory batch of random images "
        f"with {BOXES_PER_IMAGE} random boxes each, {calls} calls timed after a first call that traces and warms "
        "up. Detect: `model.detect` (preprocess, network, box decoding, NMS) compiled once, median of repeated "
        "calls on the batch and on one image. OD API anchors: counted from the config as the OD API lays them out "
        "(feature map cells x anchors per cell). The real OD API, trained side by side with tfodkit on its own "
        "configs, is in the next section (`bench/bench_od_api.py`).",
        "",
        "| template | input | anchors | OD API anchors | parameters | trace + first call s | train steps/s | "
        "detect batch ms | detect 1 image ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {row.template} | {row.size} | {row.anchors} | {row.od_api_anchors} | {row.params:,} | "
              f"{row.compile_s:.0f} | {row.steps_per_s:.2f} | {row.detect_batch_ms:.0f} | {row.detect_one_ms:.1f} |"
              for row in rows]
    tf_keras_ms, ours_ms = backbone_ms
    lines += [
        "",
        f"Backbone alone, same run: one training step of MobileNetV2 (no top, {BACKBONE_SIZE}x{BACKBONE_SIZE}, "
        f"batch {batch_size}, SGD with momentum) takes {tf_keras_ms:.0f} ms with tf_keras "
        f"{tf_keras.__version__}'s keras.applications.MobileNetV2 (the Keras the OD API runs on) and "
        f"{ours_ms:.0f} ms with tfodkit's Keras 3 backbone (ratio tf_keras / tfodkit "
        f"{tf_keras_ms / ours_ms:.2f}).",
    ]
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}), TensorFlow {tf.__version__}, Python "
        f"{platform.python_version()}. Rates vary with the load of other jobs on "
        "the same cores.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2, help=f"timed calls of {STEPS_PER_CALL} steps (default 2)")
    parser.add_argument("--templates", nargs="*", help="template names (default: every pipelines/*.config)")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()
    paths = sorted((ROOT / "pipelines").glob("*.config"))
    if args.templates:
        paths = [path for path in paths if path.stem in args.templates]
    rows = []
    for path in paths:
        rows.append(measure(path, args.batch_size, args.calls))
        print(rows[-1], file=sys.stderr, flush=True)
    backbone_ms = backbone_step_ms(args.batch_size, BACKBONE_SIZE, calls=5)
    section = report(rows, backbone_ms, args.batch_size, args.calls)
    publish(section, args.docs, "bench_models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
