"""`tfodkit export-tflite`: a checkpoint -> a .tflite detector with metadata (float, or int8 with a uint8 input)."""

from __future__ import annotations

import argparse

from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError
from tfodkit.export.saved_model import label_map_path
from tfodkit.export.tflite import (
    INPUT_NAME,
    QUANTIZATIONS,
    SIGNATURE_KEY,
    TFLiteExport,
    check_output_directory,
    export_tflite,
    postprocess_options,
    representative_images,
)
from tfodkit.export.trained_model import load_trained_model
from tfodkit.model.builder import image_resizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline_config_path", required=True, help="the pipeline.config the model was trained with")
    parser.add_argument("--trained_checkpoint_dir", required=True,
                        help="the training run's --model_dir (or a folder holding an OD API TF2 ckpt-N)")
    parser.add_argument("--output_directory", required=True, help="where the files go, e.g. exported/NAME_tflite")
    parser.add_argument("--checkpoint", help="export this checkpoint (ckpt-N in --trained_checkpoint_dir, or a "
                                             "full prefix) instead of the latest one")
    parser.add_argument("--max_detections", type=int, default=10,
                        help="detections the model returns per image (default: %(default)s)")
    parser.add_argument("--use_regular_nms", action="store_true",
                        help="per-class NMS (slower) instead of NMS over each anchor's best class")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="int8: full-integer weights and activations, uint8 input (default: %(default)s)")
    parser.add_argument("--representative", metavar="GLOB",
                        help="TFRecords whose images calibrate the int8 model, e.g. 'tfrecords/train-*.tfrecord'")
    parser.add_argument("-n", dest="num_representative", type=int, default=200,
                        help="representative images to use (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a pipeline.config field (repeatable)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --output_directory, replacing the files this command writes")


def usage(result: TFLiteExport) -> str:
    """Python lines that run the model with LiteRT through its signature."""
    feed = "uint8 pixels" if result.metadata["input"]["dtype"] == "uint8" else "(pixels - 127.5) / 127.5, float32"
    height, width = result.metadata["input"]["shape"][1:3]
    return (
        "from ai_edge_litert.interpreter import Interpreter\n"
        f'runner = Interpreter(model_path="{result.model}").get_signature_runner("{SIGNATURE_KEY}")\n'
        f"out = runner({INPUT_NAME}=image)  # [1, {height}, {width}, 3] RGB, bilinear-resized; {feed}\n"
        "# out: detection_boxes, detection_classes (0-based), detection_scores, num_detections"
    )


def run(args: argparse.Namespace) -> int:
    # The cheap checks and the representative images first, before the model is built.
    check_output_directory(args.output_directory, args.overwrite, args.quantize)
    config = load_pipeline(args.pipeline_config_path, args.overrides)
    postprocess_options(config, args.max_detections, args.use_regular_nms)
    label_map_path(config)
    representative = None
    if args.quantize == "int8":
        if not args.representative:
            raise TfodkitError("--quantize int8: needs --representative GLOB (the training TFRecords)")
        representative = representative_images(args.representative, args.num_representative,
                                               image_resizer(config.model.ssd))
    trained = load_trained_model(config, args.trained_checkpoint_dir, args.checkpoint)
    result = export_tflite(config, trained, args.output_directory, max_detections=args.max_detections,
                           use_regular_nms=args.use_regular_nms, representative=representative,
                           overwrite=args.overwrite)
    model_input = result.metadata["input"]
    print(f"exported {result.source_checkpoint} (step {result.step}) to TFLite ({args.quantize}):")
    for path in (result.model, result.labels, result.model_json, result.pipeline_config):
        print(f"  {path}")
    normalization = model_input["normalization"]
    print(f"input {model_input['name']}: {model_input['dtype']} {model_input['shape']}, pixels p as "
          f"(p - {normalization['mean'][0]:g}) / {normalization['std'][0]:g}")
    print("outputs, by index in get_output_details():")
    for output in result.metadata["outputs"]:
        print(f"  {output['index']}: {output['name']} ({output['role']})")
    print("use it:")
    print("\n".join(f"  {line}" for line in usage(result).splitlines()))
    return 0
