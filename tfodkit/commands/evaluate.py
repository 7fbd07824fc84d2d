"""`tfodkit evaluate`: the latest checkpoint of a training run, or an exported model, on an eval split."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfodkit.config.loader import load_pipeline
from tfodkit.dataset.record_files import find_records
from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import SUMMARY_METRICS
from tfodkit.evaluation.exported_model import evaluate_model, split_records
from tfodkit.export.runtime import Detector, load_detector
from tfodkit.protos import pipeline_pb2
from tfodkit.training.evaluator import evaluate_checkpoints


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline_config_path",
                        help="the run's pipeline.config (required with --checkpoint_dir; with --model, default: the "
                             "one exported beside the model)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint_dir", help="the run's model_dir (ckpt-N files): evaluate its latest checkpoint")
    what.add_argument("--model", help="an exported model: an export directory (tfodkit export), its saved_model/, "
                                      "or a .tflite file (tfodkit export-tflite)")
    parser.add_argument("--split", choices=("val", "test"),
                        help="with --model: the split to evaluate (default: val = the pipeline's eval_input_reader; "
                             "test = the test shards named in the TFRecords folder's manifest.json)")
    parser.add_argument("--records", metavar="GLOB",
                        help="with --model: evaluate these TFRecords (a file, folder or glob) instead of the split's")
    parser.add_argument("--model_dir", help="where eval/ summaries go (default: --checkpoint_dir; with --model, "
                                            "eval_<split> beside the model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a pipeline.config field (repeatable)")


def _model_config(args: argparse.Namespace, detector: Detector) -> pipeline_pb2.TrainEvalPipelineConfig | None:
    path = args.pipeline_config_path or detector.pipeline_config
    return load_pipeline(path, args.overrides) if path else None


def _run_model(args: argparse.Namespace) -> int:
    detector = load_detector(args.model)
    config = _model_config(args, detector)
    split = args.split or "val"
    files = [str(path) for path in find_records(args.records)] if args.records else split_records(config, split)
    model_dir = Path(args.model_dir) if args.model_dir else detector.path.parent / f"eval_{split}"
    evaluation = evaluate_model(detector, files, model_dir, config)
    print(f"{detector.path} on {evaluation.num_images} image(s) of {', '.join(files)}:")
    for tag in SUMMARY_METRICS:
        print(f"{tag}: {evaluation.metrics[tag]:.4f}")
    if evaluation.num_difficult_boxes:
        print(f"{evaluation.num_difficult_boxes} difficult boxes evaluated as ordinary ones")
    print(f"eval/ summaries written under {model_dir} at step {evaluation.step}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.model:
        return _run_model(args)
    if args.split or args.records:
        raise TfodkitError("--split and --records apply to --model; a checkpoint is evaluated on the pipeline's "
                           "eval_input_reader")
    if not args.pipeline_config_path:
        raise TfodkitError("--checkpoint_dir needs --pipeline_config_path (the run's pipeline.config)")
    config = load_pipeline(args.pipeline_config_path, args.overrides)
    model_dir = args.model_dir or args.checkpoint_dir
    (evaluation,) = evaluate_checkpoints(config, args.checkpoint_dir, model_dir, once=True, timeout_s=0)
    for tag in SUMMARY_METRICS:
        print(f"{tag}: {evaluation.metrics[tag]:.4f}")
    for tag, value in sorted(evaluation.losses.items()):
        print(f"{tag}: {value:.4f}")
    print(f"eval/ summaries written under {model_dir} at step {evaluation.step}")
    return 0
