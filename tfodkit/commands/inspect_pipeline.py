"""`tfodkit inspect-pipeline`: validate a pipeline.config, summarise it, and build its model to size it up."""

from __future__ import annotations

import argparse

from tfodkit.config.loader import load_pipeline
from tfodkit.config.summary import summary_sections
from tfodkit.protos import pipeline_pb2

TRAIN_RECORDS = ""  # --records given without a value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="FILE", help="pipeline.config to check")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field before checking, e.g. train_config.batch_size=16 (repeatable)",
    )
    parser.add_argument("--no-model", action="store_true", help="skip building the model (faster)")
    parser.add_argument(
        "--records",
        nargs="?",
        const=TRAIN_RECORDS,
        metavar="GLOB",
        help="add the anchors section (tfodkit inspect-anchors) for these TFRecords; alone: the config's "
        "train_input_reader",
    )


def _model_lines(config: pipeline_pb2.TrainEvalPipelineConfig) -> list[str]:
    from tfodkit.model.builder import anchor_generator, build_ssd

    model = build_ssd(config)
    shapes = [tuple(int(d) for d in output.shape[1:]) for output in model.feature_extractor.outputs]
    per_location = anchor_generator(config.model.ssd).num_anchors_per_location()
    lines = []
    for index, ((height, width, depth), anchors) in enumerate(zip(shapes, per_location)):
        lines.append(
            f"feature map {index}: {height}x{width}x{depth}, {anchors} anchors per cell = {height * width * anchors}"
        )
    lines.append(f"anchors: {int(model.anchors.shape[0])} in total")
    parts = (model.feature_extractor, model.box_predictor)
    total = sum(part.count_params() for part in parts)
    trainable = sum(sum(int(w.numpy().size) for w in part.trainable_weights) for part in parts)
    lines.append(f"parameters: {total:,} ({trainable:,} trainable)")
    return lines


def run(args: argparse.Namespace) -> int:
    config = load_pipeline(args.config, args.overrides)
    print(f"{args.config}: valid")
    sections = summary_sections(config)
    if not args.no_model:
        sections["model size"] = _model_lines(config)
    if args.records is not None:
        from tfodkit.anchor_fit.report import analyse, report_lines

        fit = analyse(config, args.records or None)
        sections["anchors (tfodkit inspect-anchors)"] = report_lines(fit, config, args.config)
    for title, lines in sections.items():
        print(f"\n{title}:")
        for line in lines:
            print(f"  {line}")
    return 0
