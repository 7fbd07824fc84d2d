"""`tfodkit evaluate`: one evaluation of the latest checkpoint of a training run."""

from __future__ import annotations

import argparse

from tfodkit.config.loader import load_pipeline
from tfodkit.evaluation.coco_metrics import SUMMARY_METRICS
from tfodkit.training.evaluator import evaluate_checkpoints


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline_config_path", required=True, help="the run's pipeline.config")
    parser.add_argument("--checkpoint_dir", required=True, help="the run's model_dir (ckpt-N files)")
    parser.add_argument("--model_dir", help="where eval/ summaries go (default: --checkpoint_dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a pipeline.config field (repeatable)")


def run(args: argparse.Namespace) -> int:
    config = load_pipeline(args.pipeline_config_path, args.overrides)
    model_dir = args.model_dir or args.checkpoint_dir
    (evaluation,) = evaluate_checkpoints(config, args.checkpoint_dir, model_dir, once=True, timeout_s=0)
    for tag in SUMMARY_METRICS:
        print(f"{tag}: {evaluation.metrics[tag]:.4f}")
    for tag, value in sorted(evaluation.losses.items()):
        print(f"{tag}: {value:.4f}")
    print(f"eval/ summaries written under {model_dir}")
    return 0
