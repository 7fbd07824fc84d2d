"""`tfodkit new-pipeline`: write a pipeline.config from a shipped template, a label map and TFRecord globs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfodkit.config.customize import PipelineChoices, cosine_schedule, new_pipeline
from tfodkit.config.loader import pipeline_text
from tfodkit.config.registry import CHECKPOINT_TYPES
from tfodkit.config.templates import TEMPLATES
from tfodkit.errors import TfodkitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=list(TEMPLATES), help="template to start from")
    parser.add_argument("--label-map", required=True, help="label_map.pbtxt (num_classes is taken from it)")
    parser.add_argument("--train", required=True, help="training TFRecords: a file or a quoted glob")
    parser.add_argument("--val", required=True, help="validation TFRecords: a file or a quoted glob")
    parser.add_argument("--batch-size", type=int, help="default: the template's (8)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="cosine schedule's learning_rate_base (default: the template's 0.04 scaled by batch size / 8)",
    )
    parser.add_argument("--num-steps", type=int, help="training steps (default: the template's 5000)")
    parser.add_argument(
        "--fine-tune-checkpoint", help="TF2 checkpoint prefix or Keras weights file to start from (default: none)"
    )
    parser.add_argument(
        "--fine-tune-checkpoint-type",
        default="classification",
        choices=list(CHECKPOINT_TYPES[1:]),
        help="what the checkpoint holds (default: %(default)s, i.e. backbone only)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any field last, as `tfodkit train --set` does, e.g. the anchor settings "
                             "`tfodkit inspect-anchors` suggests (repeatable)")
    parser.add_argument("--out", required=True, help="pipeline.config file to write")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise TfodkitError(f"--out {out}: already exists (use --force to overwrite)")
    config = new_pipeline(
        PipelineChoices(
            model=args.model,
            label_map=args.label_map,
            train=args.train,
            val=args.val,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            num_steps=args.num_steps,
            fine_tune_checkpoint=args.fine_tune_checkpoint,
            fine_tune_checkpoint_type=args.fine_tune_checkpoint_type,
            overrides=tuple(args.overrides),
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `tfodkit new-pipeline --model {args.model}`; relative paths are relative to the\n"
    header += "# directory tfodkit runs in.\n"
    out.write_text(header + pipeline_text(config), encoding="utf-8")
    print(
        f"wrote {out}: {args.model}, {config.model.ssd.num_classes} classes, batch {config.train_config.batch_size}, "
        f"{config.train_config.num_steps} steps, learning_rate_base {cosine_schedule(config).learning_rate_base:.4g}"
    )
    return 0
