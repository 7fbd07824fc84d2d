"""`tfodkit demo-data`: write the handwritten-digits demo dataset as JPEG + LabelImg XML."""

from __future__ import annotations

import argparse
import time

from tfodkit.dataset import demo_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="annotations/demo", help="output folder (default: annotations/demo)")
    parser.add_argument("--num-images", type=int, default=600, help="number of images (default: 600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    counts = demo_data.write_dataset(args.out, num_images=args.num_images, seed=args.seed)
    seconds = time.perf_counter() - start
    per_class = ", ".join(f"{name}: {count}" for name, count in counts.items())
    print(f"wrote {args.num_images} images with {sum(counts.values())} digits to {args.out} in {seconds:.1f} s")
    print(f"digits per class: {per_class}")
    return 0
