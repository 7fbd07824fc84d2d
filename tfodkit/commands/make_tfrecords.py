"""`tfodkit make-tfrecords`: convert a LabelImg folder to sharded TFRecords, a label map and a manifest."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tfodkit.dataset import split as splitting
from tfodkit.dataset.convert import DEFAULT_SPLIT, ConversionFailed, ConvertOptions, convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", type=Path,
                        help="LabelImg folder with the XML files beside the images")
    parser.add_argument("--images", type=Path, help="image folder (instead of FOLDER; needs --annotations)")
    parser.add_argument("--annotations", type=Path, help="XML folder (instead of FOLDER; needs --images)")
    parser.add_argument("--out", type=Path, default=Path("tfrecords"), help="output folder (default: tfrecords)")
    parser.add_argument("--label-map", type=Path, help="use this label_map.pbtxt instead of generating one")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="leave out (and list) objects whose class is not in --label-map")
    parser.add_argument("--split", help="split fractions (default: train=0.8,val=0.1,test=0.1)")
    parser.add_argument("--split-files", help="take the split from lists: train=train.txt,val=val.txt,... "
                                              "(one image path, file name or stem per line)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and record order (default: 0)")
    parser.add_argument("--shards", type=int, help="shards per split (default: one per ~100 MB)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes; the output is identical for any count (default: min(4, CPUs))")
    parser.add_argument("--skip-bad", action="store_true",
                        help="convert what is valid and list every skipped input (default: any error aborts)")
    parser.add_argument("--drop-negatives", action="store_true", help="leave out images whose XML has no objects")
    parser.add_argument("--unlabelled-as-negatives", action="store_true",
                        help="use images without any XML as images without objects (default: listed, left out)")
    parser.add_argument("--exif-transpose", action="store_true",
                        help="rotate images upright by their EXIF orientation, for sets labelled in a tool that "
                             "applies EXIF (LabelImg does not: by default boxes refer to the stored pixels)")


def _options(args: argparse.Namespace) -> ConvertOptions:
    if args.folder is not None and (args.images or args.annotations):
        raise SystemExit("tfodkit make-tfrecords: give FOLDER or --images with --annotations, not both")
    if args.folder is None and not (args.images and args.annotations):
        raise SystemExit("tfodkit make-tfrecords: give FOLDER, or both --images and --annotations")
    if args.shards is not None and args.shards < 1:
        raise SystemExit("tfodkit make-tfrecords: --shards must be at least 1")
    if args.workers < 1:
        raise SystemExit("tfodkit make-tfrecords: --workers must be at least 1")
    if args.split and args.split_files:
        raise SystemExit("tfodkit make-tfrecords: give --split or --split-files, not both")
    split_files = splitting.parse_split_files(args.split_files) if args.split_files else None
    return ConvertOptions(
        images=args.images or args.folder,
        annotations=args.annotations or args.folder,
        out=args.out,
        label_map=args.label_map,
        skip_unknown=args.skip_unknown,
        split=splitting.parse_fractions(args.split) if args.split else dict(DEFAULT_SPLIT),
        split_files=split_files,
        seed=args.seed,
        shards=args.shards,
        workers=args.workers,
        skip_bad=args.skip_bad,
        drop_negatives=args.drop_negatives,
        unlabelled_as_negatives=args.unlabelled_as_negatives,
        exif_transpose=args.exif_transpose,
    )


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    start = time.perf_counter()
    try:
        result = convert(options)
    except ConversionFailed as failure:
        for warning in failure.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        raise
    seconds = time.perf_counter() - start
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for skipped in result.skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
    manifest = result.manifest
    for split, summary in manifest["splits"].items():
        print(f"{split}: {summary['images']} images ({summary['negatives']} without objects), "
              f"{summary['boxes']} boxes, {len(summary['shards'])} shard(s)")
    print(f"{len(manifest['label_map']['classes'])} classes; {len(result.warnings)} warning(s), "
          f"{len(result.skipped)} skipped input(s); {seconds:.1f} s")
    print(f"wrote {options.out}/: TFRecord shards, label_map.pbtxt, manifest.json")
    return 0
