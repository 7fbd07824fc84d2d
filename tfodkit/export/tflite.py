"""TFLite export: the SSD network ending in TFLite's own TFLite_Detection_PostProcess op, converted float or int8."""

from __future__ import annotations

import glob
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from flatbuffers import flexbuffers

from tfodkit import label_map as label_maps
from tfodkit.config.loader import pipeline_text
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.errors import TfodkitError, op_error_text
from tfodkit.export import tflite_metadata
from tfodkit.export.runtime import MODEL_JSON
from tfodkit.export.saved_model import PIPELINE_FILE, label_map_path
from tfodkit.export.tflite_metadata import LABELS_FILE, Normalization
from tfodkit.export.trained_model import TrainedModel
from tfodkit.model.box_coder import center_size
from tfodkit.model.postprocessing import convert_scores
from tfodkit.model.preprocessing import FixedShapeResizer, preprocess
from tfodkit.model.ssd import SSD
from tfodkit.protos import pipeline_pb2

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "input_tensor"
# The outputs in the op's port order, which is their tensor-index order and (once _finalize has put them so)
# their order in the model's output list; with the role names the metadata writers give them.
OUTPUTS = (
    ("detection_boxes", "location"),
    ("detection_classes", "category"),
    ("detection_scores", "score"),
    ("num_detections", "number of detections"),
)
MODEL_FILES = {"none": "model.tflite", "int8": "model_int8.tflite"}  # by --quantize
QUANTIZATIONS = tuple(MODEL_FILES)
# The float model's input: pixels p mapped to [-1, 1] as the model preprocesses (mobilenet_scale).
FLOAT_NORMALIZATION = Normalization(mean=127.5, std=127.5)
# How far (in pixel values) an int8 model's uint8 input mapping may be from FLOAT_NORMALIZATION: its zero point
# is an integer, so 127 or 128.
_PIXEL_TOLERANCE = 0.51


@dataclass(frozen=True)
class PostProcessOptions:
    """The attributes of TFLite_Detection_PostProcess, read from the pipeline.config and the export flags."""

    num_classes: int
    max_detections: int
    detections_per_class: int
    score_threshold: float
    iou_threshold: float
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    use_regular_nms: bool
    max_classes_per_detection: int = 1

    def implements(self) -> str:
        """The `experimental_implements` text (a NameAttrList) the converter turns into the custom op."""
        ints = {"max_detections": self.max_detections, "max_classes_per_detection": self.max_classes_per_detection,
                "detections_per_class": self.detections_per_class, "num_classes": self.num_classes}
        floats = {"nms_score_threshold": self.score_threshold, "nms_iou_threshold": self.iou_threshold,
                  "y_scale": self.y_scale, "x_scale": self.x_scale, "h_scale": self.h_scale, "w_scale": self.w_scale}
        attrs = [f'attr {{ key: "{key}" value {{ i: {value} }} }}' for key, value in ints.items()]
        attrs += [f'attr {{ key: "{key}" value {{ f: {value!r} }} }}' for key, value in floats.items()]
        attrs.append(f'attr {{ key: "use_regular_nms" value {{ b: {str(self.use_regular_nms).lower()} }} }}')
        return " ".join([f'name: "{POSTPROCESS_OP}"'] + attrs)


def postprocess_options(
    config: pipeline_pb2.TrainEvalPipelineConfig, max_detections: int, use_regular_nms: bool
) -> PostProcessOptions:
    """The op's attributes; what the op cannot do as the config asks is an error naming the field."""
    ssd = config.model.ssd
    nms = ssd.post_processing.batch_non_max_suppression
    if max_detections < 1:
        raise TfodkitError(f"--max_detections: must be at least 1, got {max_detections}")
    if nms.soft_nms_sigma != 0.0:
        raise TfodkitError(
            "model.ssd.post_processing.batch_non_max_suppression.soft_nms_sigma: TFLite's "
            f"{POSTPROCESS_OP} has no soft NMS; set it to 0 to export (e.g. --set "
            "model.ssd.post_processing.batch_non_max_suppression.soft_nms_sigma=0)"
        )
    coder = ssd.box_coder.faster_rcnn_box_coder
    return PostProcessOptions(
        num_classes=ssd.num_classes,
        max_detections=max_detections,
        detections_per_class=nms.max_detections_per_class,
        score_threshold=nms.score_threshold,
        iou_threshold=nms.iou_threshold,
        y_scale=coder.y_scale,
        x_scale=coder.x_scale,
        h_scale=coder.height_scale,
        w_scale=coder.width_scale,
        use_regular_nms=use_regular_nms,
    )


def network_function(model: SSD) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Normalised images -> box encodings [B, N, 4] and class scores [B, N, C + 1]: the model's own feature
    extractor and box predictor (SSD.call without its preprocessing), then the config's score converter on
    every column, background included."""

    def network(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        feature_maps = model.feature_extractor(images, training=False)
        box_encodings, logits = model.box_predictor(feature_maps, training=False)
        return box_encodings, convert_scores(logits, model.score_converter, model.logit_scale)

    return network


class TFLiteDetectionModule(tf.Module):
    """The graph to convert: normalised image [1, H, W, 3] -> network -> TFLite_Detection_PostProcess.

    The op takes the class scores with their background column; its num_classes attribute makes it skip it.
    The post-processing function is a placeholder with the op's output shapes, which the converter replaces
    with the op (as the OD API's export_tflite_graph_tf2 builds it). The module tracks the variables under
    the model's Keras variables: tracking these instead leaves them unfrozen (READ_VARIABLE ops) in the
    converted model.
    """

    def __init__(self, model: SSD, options: PostProcessOptions) -> None:
        super().__init__(name="tflite_detection_module")
        self.model_variables = [variable.value for variable in model.variables]
        network = network_function(model)
        # The op takes the anchors in centre form: ycenter, xcenter, height, width.
        anchors = tf.stack(center_size(model.anchors), axis=-1).numpy()
        count = options.max_detections

        @tf.function(experimental_implements=options.implements())
        def postprocess(box_encodings: tf.Tensor, scores: tf.Tensor, anchors: tf.Tensor) -> tuple[tf.Tensor, ...]:
            return tf.zeros([1, count, 4]), tf.zeros([1, count]), tf.zeros([1, count]), tf.zeros([1])

        height, width = model.image_size

        @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)])
        def serve(input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
            box_encodings, scores = network(input_tensor)
            results = postprocess(box_encodings, scores, tf.constant(anchors))
            return {name: result for (name, _), result in zip(OUTPUTS, results)}

        self.serve = serve


def representative_images(pattern: str, count: int, resizer: FixedShapeResizer) -> list[np.ndarray]:
    """Up to `count` images of the TFRecords matching `pattern`, as the model sees them: decoded by the
    training decoder, resized by the config's resizer and scaled to [-1, 1] by the model's own preprocessing;
    [1, H, W, 3] float32 each."""
    if count < 1:
        raise TfodkitError(f"-n: must be at least 1, got {count}")
    files = sorted(path for path in glob.glob(str(Path(pattern).expanduser())) if Path(path).is_file())
    if not files:
        raise TfodkitError(f"--representative {pattern!r}: no files match; give the training TFRecords, "
                           "e.g. 'tfrecords/train-*.tfrecord'")
    decoder = ExampleDecoder()
    dataset = tf.data.TFRecordDataset(files).take(count).map(lambda record: decoder(record)["image"])
    try:
        images = [preprocess(image[tf.newaxis], resizer).numpy() for image in dataset]
    except tf.errors.OpError as error:
        raise TfodkitError(f"--representative {pattern!r}: cannot read the images ({op_error_text(error)}); give "
                           "TFRecords of tf.train.Examples as `tfodkit make-tfrecords` writes them") from None
    if not images:
        raise TfodkitError(f"--representative {pattern!r}: the {len(files)} matching file(s) hold no images")
    return images


def _calibration_samples(images: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """The representative images, the first with one black and one white pixel (-1 and 1): the calibrated
    input range, from which the uint8 input's quantization follows, is then the whole pixel range 0-255 even
    for images of low contrast, so callers can feed plain pixels."""
    first = images[0].copy()
    first[0, 0, 0, :], first[0, 0, 1, :] = -1.0, 1.0
    for image in [first] + images[1:]:
        yield {INPUT_NAME: image}


def convert(module: TFLiteDetectionModule, representative: list[np.ndarray] | None = None) -> bytes:
    """The converter's .tflite: float, or with `representative` images full-integer int8 with a uint8 input and
    float32 outputs (int8 outputs are not possible after the post-processing op)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.allow_custom_ops = True
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _calibration_samples(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    with warnings.catch_warnings():  # the calibration's own use of tf.lite.Interpreter, deprecated
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return converter.convert()


def _finalize(model: bytes, options: PostProcessOptions) -> bytes:
    """The converted model with its outputs listed in the op's port order (the converter lists the count first:
    the order confusion of tensorflow/models #10970) and with the op's detections_per_class, which the converter
    leaves out of the op's options (the kernel would use 100)."""
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    (subgraph,) = tflite.subgraphs
    (op,) = [op for op in subgraph.operators
             if tflite.operatorCodes[op.opcodeIndex].customCode == POSTPROCESS_OP.encode()]
    attributes = flexbuffers.Loads(bytes(op.customOptions))
    attributes["detections_per_class"] = options.detections_per_class
    op.customOptions = np.frombuffer(flexbuffers.Dumps(attributes), dtype=np.uint8)
    ports = [int(index) for index in op.outputs]
    (signature,) = tflite.signatureDefs
    names = {int(item.tensorIndex): item.name.decode() for item in signature.outputs}
    if sorted(int(index) for index in subgraph.outputs) != sorted(ports) or \
            [names.get(index) for index in ports] != [name for name, _ in OUTPUTS]:
        raise RuntimeError(f"unexpected converted outputs {list(subgraph.outputs)} for the op's {ports} ({names})")
    subgraph.outputs = np.asarray(ports, dtype=np.int32)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(tflite.Pack(builder), tflite_metadata.TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def input_normalization(model: bytes) -> tuple[list[int], str, Normalization]:
    """The input's shape, dtype and how pixel values map to it, as LiteRT reports them; a uint8 input must map
    pixels to [-1, 1] as the model preprocesses."""
    (details,) = Interpreter(model_content=model).get_input_details()
    dtype = np.dtype(details["dtype"]).name
    if dtype == "float32":
        return list(details["shape"]), dtype, FLOAT_NORMALIZATION
    scale, zero_point = details["quantization"]
    normalization = Normalization(mean=float(zero_point), std=1.0 / scale)
    if abs(normalization.mean - FLOAT_NORMALIZATION.mean) > _PIXEL_TOLERANCE or \
            abs(normalization.std - FLOAT_NORMALIZATION.std) > _PIXEL_TOLERANCE:
        raise RuntimeError(f"the int8 model's uint8 input maps pixels p to (p - {normalization.mean}) / "
                           f"{normalization.std}, not to [-1, 1] as the model preprocesses")
    return list(details["shape"]), dtype, normalization


@dataclass(frozen=True)
class TFLiteExport:
    """What export_tflite wrote and how the model is fed."""

    model: Path
    labels: Path
    model_json: Path
    pipeline_config: Path
    metadata: dict[str, Any]  # model.json's content
    source_checkpoint: str
    step: int


def check_output_directory(output_directory: str | Path, overwrite: bool, quantize: str) -> Path:
    """Refuse an existing non-empty output directory unless `overwrite`, and one holding the other kind of
    model (its model.json would no longer describe it)."""
    output = Path(output_directory)
    if output.is_file() or (output.is_dir() and any(output.iterdir()) and not overwrite):
        raise TfodkitError(f"--output_directory {output}: exists and is not an empty directory; choose another or pass "
                           "--overwrite (which replaces the files this command writes and keeps the others)")
    others = [name for kind, name in MODEL_FILES.items() if kind != quantize and (output / name).exists()]
    if others:
        raise TfodkitError(f"--output_directory {output}: holds {others[0]}, which its {MODEL_JSON} describes; "
                           f"export the {quantize} model into another directory")
    return output


def _write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a scratch file renamed into place (an old file stays whole until then)."""
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def export_tflite(
    config: pipeline_pb2.TrainEvalPipelineConfig,
    trained: TrainedModel,
    output_directory: str | Path,
    *,
    max_detections: int = 10,
    use_regular_nms: bool = False,
    representative: list[np.ndarray] | None = None,
    overwrite: bool = False,
) -> TFLiteExport:
    """Convert (int8 when given `representative` images, see representative_images; float otherwise), embed
    the metadata, and write the .tflite, labels.txt, model.json and pipeline.config into `output_directory`."""
    quantize = "none" if representative is None else "int8"
    output = check_output_directory(output_directory, overwrite, quantize)
    options = postprocess_options(config, max_detections, use_regular_nms)
    labels = tflite_metadata.label_lines(label_maps.load(label_map_path(config)), options.num_classes)
    converted = _finalize(convert(TFLiteDetectionModule(trained.model, options), representative), options)
    shape, dtype, normalization = input_normalization(converted)
    labels_text = "\n".join(labels) + "\n"
    # The checkpoint's name, not its path: a deployed model carries no path of the machine that exported it.
    description = (f"SSD exported by tfodkit from {Path(trained.prefix).name} (step {trained.step}); "
                   f"{'int8 with uint8 input' if representative is not None else 'float32'}")
    metadata = tflite_metadata.metadata_buffer(normalization, dtype == "uint8", description)
    model = tflite_metadata.embed_metadata(converted, metadata, {LABELS_FILE: labels_text.encode()})
    description_json = tflite_metadata.model_json(
        input_name=INPUT_NAME, input_shape=shape, input_dtype=dtype, normalization=normalization,
        resize_method=trained.model.resizer.resize_method, output_names=OUTPUTS, num_classes=options.num_classes,
        max_detections=max_detections, quantization=quantize, pipeline_config=PIPELINE_FILE,
        checkpoint=trained.prefix,
        step=trained.step,
    )
    output.mkdir(parents=True, exist_ok=True)
    paths = TFLiteExport(model=output / MODEL_FILES[quantize], labels=output / LABELS_FILE,
                         model_json=output / MODEL_JSON, pipeline_config=output / PIPELINE_FILE,
                         metadata=description_json, source_checkpoint=trained.prefix, step=trained.step)
    _write(paths.model, model)
    _write(paths.labels, labels_text.encode())
    _write(paths.pipeline_config, pipeline_text(config).encode())
    _write(paths.model_json, (json.dumps(description_json, indent=2) + "\n").encode())
    return paths
