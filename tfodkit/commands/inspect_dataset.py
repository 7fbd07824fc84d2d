"""`tfodkit inspect-dataset`: class counts and box statistics of a LabelImg folder or of TFRecords."""

from __future__ import annotations

import argparse

from tfodkit.dataset import statistics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="DIR_OR_TFRECORDS",
        help="a LabelImg folder (XML files), or TFRecords: a file, a folder of shards or a quoted glob",
    )
    parser.add_argument(
        "--label-map",
        help="label_map.pbtxt naming class ids of records without class text "
        "(default: the label_map.pbtxt beside the records, when there is one)",
    )


def run(args: argparse.Namespace) -> int:
    print(statistics.format_report(statistics.collect(args.source, args.label_map)))
    return 0
