"""The `tfodkit` command line: one entry point, one subcommand per workflow step."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

from tfodkit import __version__
from tfodkit.errors import Interrupted, TfodkitError
from tfodkit.startup_noise import quiet_tensorflow_start

# Subcommand -> (module in tfodkit.commands, one-line help). Each module defines
# `add_arguments(parser)` and `run(args) -> int`; it is imported only when its subcommand runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("demo_data", "write the digits demo dataset as LabelImg Pascal VOC XML"),
    "make-tfrecords": ("make_tfrecords", "convert a LabelImg dataset to sharded TFRecords and a label map"),
    "inspect-dataset": ("inspect_dataset", "class counts and box statistics of a LabelImg folder or TFRecords"),
    "inspect-tfrecord": ("inspect_tfrecord", "read records back and draw their boxes, or --check every record"),
    "pretrained-backbone": ("pretrained_backbone", "export an OD API TF1 model's MobileNetV2 backbone as Keras weights"),
    "new-pipeline": ("new_pipeline", "write a pipeline.config from a template, a label map and TFRecords"),
    "inspect-pipeline": ("inspect_pipeline", "validate a pipeline.config and summarise model, schedule and paths"),
    "train": ("train", "train from a pipeline.config with periodic evaluation and TensorBoard summaries"),
    "evaluate": ("evaluate", "evaluate a run's latest checkpoint or an exported model (COCO metrics)"),
    "export": ("export", "export a checkpoint as a SavedModel with the OD API's serving signature"),
    "export-tflite": ("export_tflite", "export a checkpoint as a .tflite model with metadata (float or int8)"),
    "sweep": ("sweep", "train a grid or list of pipeline.config variants, one run directory each"),
    "report": ("report", "compare runs from their event files: table, recommended run, plots (Markdown, CSV, HTML)"),
    "inspect-anchors": ("inspect_anchors", "how many ground-truth boxes the anchors can match, and better anchors"),
    "detect": ("detect", "run an exported model on images: drawings, JSON, LabelImg XML for pre-labelling"),
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfodkit",
        description="The TensorFlow 2 Object Detection API workflow: LabelImg XML -> TFRecords -> SSD training "
        "and evaluation -> export (SavedModel, TFLite) -> detect.",
    )
    parser.add_argument("--version", action="version", version=f"tfodkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; user errors print one clear message and return 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    known, _ = parser.parse_known_args(argv[:1] if argv and argv[0] in COMMANDS else argv)
    module_name, help_text = COMMANDS[known.command]
    with quiet_tensorflow_start():
        module = importlib.import_module(f"tfodkit.commands.{module_name}")
    sub = argparse.ArgumentParser(prog=f"tfodkit {known.command}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except TfodkitError as error:
        print(f"tfodkit {known.command}: error: {error}", file=sys.stderr)
        return 1
    except Interrupted as interrupted:
        print(f"tfodkit {known.command}: {interrupted}", file=sys.stderr)
        if interrupted.resumable:
            print(f"to resume, run the same command again: tfodkit {shlex.join(argv)}", file=sys.stderr)
        return interrupted.exit_status


if __name__ == "__main__":
    sys.exit(main())
