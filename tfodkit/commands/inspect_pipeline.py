"""`tfodkit inspect-pipeline`: validate a pipeline.config, summarise it, and build its model to size it up."""

from __future__ import annotations

import argparse

from tfodkit.config.loader import load_pipeline
from tfodkit.config.summary import summary_sections
from tfodkit.protos import pipeline_pb2


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


def _anchors_per_location(ssd: pipeline_pb2.Ssd) -> list[int]:
    from tfodkit.model.anchors import MultiscaleAnchorGenerator, ssd_box_specs

    if ssd.anchor_generator.HasField("ssd_anchor_generator"):
        gen = ssd.anchor_generator.ssd_anchor_generator
        specs = ssd_box_specs(
            gen.num_layers, gen.min_scale, gen.max_scale, list(gen.scales), list(gen.aspect_ratios),
            gen.interpolated_scale_aspect_ratio, gen.reduce_boxes_in_lowest_layer,
        )
        return [len(layer) for layer in specs]
    gen = ssd.anchor_generator.multiscale_anchor_generator
    return MultiscaleAnchorGenerator(
        gen.min_level, gen.max_level, gen.anchor_scale, tuple(gen.aspect_ratios), gen.scales_per_octave,
        gen.normalize_coordinates,
    ).num_anchors_per_location()


def _model_lines(config: pipeline_pb2.TrainEvalPipelineConfig) -> list[str]:
    from tfodkit.model.builder import build_ssd

    model = build_ssd(config)
    shapes = [tuple(int(d) for d in output.shape[1:]) for output in model.feature_extractor.outputs]
    per_location = _anchors_per_location(config.model.ssd)
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
    for title, lines in sections.items():
        print(f"\n{title}:")
        for line in lines:
            print(f"  {line}")
    return 0
