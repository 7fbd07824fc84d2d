"""`tfodkit export`: a checkpoint -> a SavedModel with the OD API's serving signature (flags as exporter_main_v2)."""

from __future__ import annotations

import argparse
from typing import Sequence

from google.protobuf import text_format

from tfodkit.config.loader import check_pipeline, load_pipeline
from tfodkit.config.overrides import apply_overrides
from tfodkit.errors import TfodkitError
from tfodkit.export.saved_model import INPUT_SIGNATURES, check_output_directory, export_saved_model, label_map_path
from tfodkit.export.trained_model import load_trained_model
from tfodkit.protos import pipeline_pb2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_type", choices=list(INPUT_SIGNATURES), default="image_tensor",
                        help="what the serving signature takes as `input_tensor` (default: %(default)s)")
    parser.add_argument("--pipeline_config_path", required=True, help="the pipeline.config the model was trained with")
    parser.add_argument("--trained_checkpoint_dir", required=True,
                        help="the training run's --model_dir (or a folder holding an OD API TF2 ckpt-N)")
    parser.add_argument("--output_directory", required=True, help="where the export goes, e.g. exported/NAME")
    parser.add_argument("--config_override", default="",
                        help="pipeline.config text merged over the file, as exporter_main_v2 merges it")
    parser.add_argument("--checkpoint", help="export this checkpoint (ckpt-N in --trained_checkpoint_dir, or a "
                                             "full prefix) instead of the latest one")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a pipeline.config field, e.g. model.ssd.num_classes=3 (repeatable; "
                             "applied after --config_override)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_directory")


def export_config(path: str, config_override: str, overrides: Sequence[str]) -> pipeline_pb2.TrainEvalPipelineConfig:
    """The pipeline.config file, --config_override text merged over it, then the --set overrides, validated."""
    if not config_override:
        return load_pipeline(path, overrides)
    config = load_pipeline(path)
    try:
        text_format.Merge(config_override, config)
    except text_format.ParseError as error:
        raise TfodkitError(f"--config_override: {error}") from None
    apply_overrides(config, tuple(overrides))
    check_pipeline(config, f"{path} with --config_override")
    return config


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, before the model is built.
    check_output_directory(args.output_directory, args.overwrite)
    config = export_config(args.pipeline_config_path, args.config_override, args.overrides)
    label_map_path(config)
    trained = load_trained_model(config, args.trained_checkpoint_dir, args.checkpoint)
    result = export_saved_model(config, trained, args.output_directory, args.input_type, args.overwrite)
    print(f"exported {result.source_checkpoint} (step {result.step}), input_type {result.input_type}:")
    for path in (result.saved_model, result.checkpoint, result.pipeline_config, result.label_map):
        print(f"  {path}")
    print("use it:")
    print("\n".join(f"  {line}" for line in result.usage().splitlines()))
    return 0
