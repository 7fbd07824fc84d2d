"""Benchmark the training input pipeline: batches/s at batch 8 on the digits demo set, per template's augmentation.

Generates the demo set and its TFRecords in bench/out/ (git-ignored, reused by later runs), then for each model
template reads --batches batches after --warmup (decode, the template's data_augmentation_options, resize,
padding), and prints batches/s and images/s, to set beside the train-step rate of the same model."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from tfodkit import inputs  # noqa: E402
from tfodkit.config.loader import parse_pipeline_text  # noqa: E402
from tfodkit.config.templates import template_text  # noqa: E402
from tfodkit.dataset import demo_data  # noqa: E402
from tfodkit.dataset.convert import ConvertOptions, convert  # noqa: E402

TEMPLATES = ("ssd_mobilenet_v2_320x320", "ssd_mobilenet_v2_fpnlite_320x320")


def demo_records(num_images: int) -> Path:
    """TFRecords of the demo set (num_images images), written once into bench/out/."""
    images = OUT / f"demo_{num_images}"
    records = OUT / f"demo_{num_images}_tfrecords"
    if not (records / "label_map.pbtxt").is_file():
        if not images.is_dir():
            demo_data.write_dataset(images, num_images=num_images, seed=0)
        convert(ConvertOptions(images=images, annotations=images, out=records, workers=2))
    return records


def rate(template: str, records: Path, batch_size: int, warmup: int, batches: int) -> float:
    """Training-pipeline batches per second, steady state."""
    config = parse_pipeline_text(template_text(template).replace("PATH_TO_BE_CONFIGURED", str(records)), template)
    config.train_config.batch_size = batch_size
    iterator = iter(inputs.train_dataset(config))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=600, help="demo set size (default: 600, the demo's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=10, help="batches read before timing")
    parser.add_argument("--batches", type=int, default=100, help="batches timed")
    args = parser.parse_args()
    start = time.perf_counter()
    records = demo_records(args.images)
    print(f"records ready in {time.perf_counter() - start:.1f} s: {records}")
    print(f"CPU cores available: {len(os.sched_getaffinity(0))}")
    for template in TEMPLATES:
        batches_per_s = rate(template, records, args.batch_size, args.warmup, args.batches)
        print(f"{template}: {batches_per_s:.2f} batches/s ({batches_per_s * args.batch_size:.0f} images/s) "
              f"at batch {args.batch_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
