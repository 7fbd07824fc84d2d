"""Benchmark the training input pipeline against the compute floor, side by side in one run.

For each model template, at batch 8 on the digits demo set: the compiled training step (10 steps per call, target
assignment included) fed by the real input pipeline (TFRecord reads, JPEG decode, the template's
data_augmentation_options, resize, padding) divided by the same step fed one in-memory synthetic batch. Both
are timed in alternating rounds after a warm-up call each, so machine load affects both alike. Target: >= 0.9.
Also the input pipeline alone (batches/s, nothing else running) and the process's peak memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from bench.quiet_tensorflow import tf  # noqa: E402  (tfodkit's TensorFlow settings, start-up noise kept off stderr)

from bench.bench_models import synthetic_batch  # noqa: E402
from bench.docs_section import cpu_name, publish  # noqa: E402
from tfodkit import inputs  # noqa: E402
from tfodkit.config.customize import PipelineChoices, new_pipeline  # noqa: E402
from tfodkit.dataset import demo_data  # noqa: E402
from tfodkit.dataset.convert import ConvertOptions, convert  # noqa: E402
from tfodkit.model.builder import build_ssd  # noqa: E402
from tfodkit.protos import pipeline_pb2  # noqa: E402
from tfodkit.training.optimizers import build_optimizer, gradient_clip_norm  # noqa: E402
from tfodkit.training.step import make_train_step  # noqa: E402

TEMPLATES = ("ssd_mobilenet_v2_320x320", "ssd_mobilenet_v2_fpnlite_320x320", "ssd_mobilenet_v2_fpnlite_640x640")
STEPS_PER_CALL = 10
TARGET_RATIO = 0.9


@dataclass
class Row:
    """One template's measurements."""

    template: str
    input_batches_per_s: float
    real_steps_per_s: float
    synthetic_steps_per_s: float

    @property
    def ratio(self) -> float:
        return self.real_steps_per_s / self.synthetic_steps_per_s


def demo_records(num_images: int) -> Path:
    """TFRecords of the demo set (num_images images, the demo's split and seed), written once into bench/out/."""
    images = OUT / f"demo_{num_images}"
    records = OUT / f"demo_{num_images}_tfrecords"
    if not (records / "label_map.pbtxt").is_file():
        if not images.is_dir():
            demo_data.write_dataset(images, num_images=num_images, seed=0)
        convert(ConvertOptions(images=images, annotations=images, out=records, workers=2,
                               split={"train": 0.8, "val": 0.1, "test": 0.1}, seed=0))
    return records


def template_config(template: str, records: Path, **choices) -> pipeline_pb2.TrainEvalPipelineConfig:
    """The template filled in with the demo records by `new-pipeline`'s code; `choices`: further
    PipelineChoices fields (batch_size, num_steps, fine_tune_checkpoint ...)."""
    return new_pipeline(PipelineChoices(
        model=template, label_map=str(records / "label_map.pbtxt"), train=str(records / "train-*.tfrecord"),
        val=str(records / "val-*.tfrecord"), **choices))


def input_rate(config: pipeline_pb2.TrainEvalPipelineConfig, warmup: int, batches: int) -> float:
    """Training-pipeline batches per second, steady state, with nothing else running."""
    iterator = iter(inputs.train_dataset(config, seed=0))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def step_rates(config: pipeline_pb2.TrainEvalPipelineConfig, calls: int, rounds: int) -> tuple[float, float]:
    """(real-input, synthetic-input) training steps per second of one model, timed in alternating rounds."""
    strategy = tf.distribute.get_strategy()
    model = build_ssd(config)
    optimizer = build_optimizer(config.train_config.optimizer)
    step = make_train_step(model, optimizer, strategy, STEPS_PER_CALL, gradient_clip_norm(config.train_config))
    features, labels = synthetic_batch(config, config.train_config.batch_size)
    synthetic = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((features, labels)).repeat()))
    real = iter(strategy.experimental_distribute_dataset(inputs.train_dataset(config, seed=0)))
    seconds = {"real": 0.0, "synthetic": 0.0}
    for iterator in (real, synthetic):
        float(step(iterator)["Loss/total_loss"])  # trace and warm up
    for _ in range(rounds):
        for name, iterator in (("real", real), ("synthetic", synthetic)):
            start = time.perf_counter()
            for _ in range(calls):
                float(step(iterator)["Loss/total_loss"])
            seconds[name] += time.perf_counter() - start
    steps = rounds * calls * STEPS_PER_CALL
    return steps / seconds["real"], steps / seconds["synthetic"]


def report(rows: list[Row], args: argparse.Namespace, peak_mib: float) -> str:
    """The Markdown section."""
    lines = [
        "## Input pipeline vs compute",
        "",
        f"`make bench` (= `.venv/bin/python bench/bench_inputs.py`): batch {args.batch_size}, the digits demo set "
        f"({args.images} images, its train split), {STEPS_PER_CALL} steps per compiled call. Real: the training "
        "step fed by `inputs.train_dataset` (reads, decode, the template's augmentation, resize, padding; target "
        f"assignment inside the step). Synthetic: the same step function fed one in-memory batch. {args.rounds} "
        f"alternating rounds of {args.calls} calls each after a warm-up call of each. Input alone: "
        f"{args.batches} batches after {args.warmup}, nothing else running. Target ratio >= {TARGET_RATIO}.",
        "",
        "| template | input alone batches/s | real-input steps/s | synthetic steps/s | ratio | target met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.template} | {row.input_batches_per_s:.1f} | {row.real_steps_per_s:.2f} | "
            f"{row.synthetic_steps_per_s:.2f} | {row.ratio:.2f} | {'yes' if row.ratio >= TARGET_RATIO else 'NO'} |"
        )
    lines += [
        "",
        f"Peak resident memory of the benchmark process (every model, both pipelines): {peak_mib:.0f} MiB. "
        f"Machine: {len(os.sched_getaffinity(0))} CPU cores ({cpu_name()}), TensorFlow {tf.__version__}, Python "
        f"{platform.python_version()}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600, help="demo set size (default: 600, the demo's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=10, help="batches read before timing the input alone")
    parser.add_argument("--batches", type=int, default=100, help="batches timed for the input alone")
    parser.add_argument("--calls", type=int, default=2, help=f"calls of {STEPS_PER_CALL} steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating real / synthetic rounds")
    parser.add_argument("--templates", nargs="*", default=list(TEMPLATES))
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()
    records = demo_records(args.images)
    rows = []
    for template in args.templates:
        config = template_config(template, records, batch_size=args.batch_size)
        batches_per_s = input_rate(config, args.warmup, args.batches)
        real, synthetic = step_rates(config, args.calls, args.rounds)
        rows.append(Row(template, batches_per_s, real, synthetic))
        print(rows[-1], file=sys.stderr, flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    section = report(rows, args, peak_mib)
    publish(section, args.docs, "bench_inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
