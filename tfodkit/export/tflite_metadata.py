"""TFLite metadata: labels, input normalisation and output roles embedded in the .tflite; labels.txt and model.json.

The metadata follows the TFLite metadata schema (MediaPipe's copy of it) the way MediaPipe's ObjectDetector
metadata writer lays it out for models whose graph ends in TFLite_Detection_PostProcess, so MediaPipe's
ObjectDetector and the TFLite Task Library load the model with no code. MediaPipe's own writer cannot be used:
its PyPI wheels from 0.10.30 on lack the native module it imports (mediapipe.tasks.cc), and the older ones pin
protobuf < 5.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from mediapipe.tasks.metadata import metadata_schema_py_generated as meta

from tfodkit.export.runtime import TFLITE_FORMAT
from tfodkit.label_map import LabelMap

LABELS_FILE = "labels.txt"
NO_CLASS = "???"  # the labels.txt line of an id the label map does not use
# Where a .tflite keeps its metadata: a model metadata entry of this name pointing at a buffer.
METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
TFLITE_IDENTIFIER = b"TFL3"
# Output tensor groups are the newest schema member used (metadata parser 1.2.0); the rest is 1.0.0.
MIN_PARSER_VERSION = "1.2.0"
DETECTION_GROUP = "detection_result"
# The metadata names of the outputs (MediaPipe's ObjectDetector finds the outputs by these) and descriptions.
OUTPUT_DESCRIPTIONS = {
    "location": "Boxes of the detections: ymin, xmin, ymax, xmax, normalised to [0, 1].",
    "category": f"Classes of the detections: 0-based line numbers of {LABELS_FILE}.",
    "score": "Scores of the detections, highest first.",
    "number of detections": "Number of valid detections in the three outputs above.",
}
# A location's values in the order left, top, right, bottom (they hold ymin, xmin, ymax, xmax).
BOX_INDEX = [1, 0, 3, 2]
PIXEL_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class Normalization:
    """How pixel values p (0-255) map to the model's input: (p - mean) / std."""

    mean: float
    std: float

    def as_json(self) -> dict[str, list[float]]:
        return {"mean": [self.mean] * 3, "std": [self.std] * 3}


def label_lines(label_map: LabelMap, num_classes: int) -> list[str]:
    """labels.txt: line i names the class TFLite reports as i (label map id i + 1); unused ids read "???"."""
    names = label_map.names_by_id()
    return [names.get(class_id, NO_CLASS) for class_id in range(1, num_classes + 1)]


def _content(kind: int, properties: Any, dimension: int | None = None) -> meta.ContentT:
    content = meta.ContentT()
    content.contentPropertiesType = kind
    content.contentProperties = properties
    if dimension is not None:  # the axis that runs over the detections
        content.range = meta.ValueRangeT()
        content.range.min = content.range.max = dimension
    return content


def _tensor(name: str, description: str, content: meta.ContentT) -> meta.TensorMetadataT:
    tensor = meta.TensorMetadataT()
    tensor.name, tensor.description, tensor.content = name, description, content
    return tensor


def _image_input(normalization: Normalization, uint8: bool) -> meta.TensorMetadataT:
    properties = meta.ImagePropertiesT()
    properties.colorSpace = meta.ColorSpaceType.RGB
    image = _tensor("image", "Input image (RGB), resized to the model's input size.",
                    _content(meta.ContentProperties.ImageProperties, properties))
    unit = meta.ProcessUnitT()
    unit.optionsType = meta.ProcessUnitOptions.NormalizationOptions
    unit.options = meta.NormalizationOptionsT()
    unit.options.mean, unit.options.std = [normalization.mean], [normalization.std]
    image.processUnits = [unit]
    image.stats = meta.StatsT()
    low, high = PIXEL_RANGE
    if not uint8:
        low, high = ((value - normalization.mean) / normalization.std for value in PIXEL_RANGE)
    image.stats.min, image.stats.max = [low], [high]
    return image


def _outputs() -> list[meta.TensorMetadataT]:
    """location, category, score, number of detections."""
    boxes = meta.BoundingBoxPropertiesT()
    boxes.index = BOX_INDEX
    boxes.type = meta.BoundingBoxType.BOUNDARIES
    boxes.coordinateType = meta.CoordinateType.RATIO
    labels = meta.AssociatedFileT()
    labels.name = LABELS_FILE
    labels.description = "Class names, one a line, in the order of the category values."
    labels.type = meta.AssociatedFileType.TENSOR_VALUE_LABELS
    feature = meta.ContentProperties.FeatureProperties
    location, category, score, count = (
        _tensor(name, description, _content(kind, properties, dimension))
        for (name, description), (kind, properties, dimension) in zip(
            OUTPUT_DESCRIPTIONS.items(),
            [(meta.ContentProperties.BoundingBoxProperties, boxes, 2), (feature, meta.FeaturePropertiesT(), 2),
             (feature, meta.FeaturePropertiesT(), 2), (feature, meta.FeaturePropertiesT(), None)],
        )
    )
    category.associatedFiles = [labels]
    return [location, category, score, count]


def metadata_buffer(normalization: Normalization, uint8_input: bool, description: str) -> bytes:
    """The ModelMetadata flatbuffer of a detector whose outputs are location, category, score, count."""
    group = meta.TensorGroupT()
    group.name = DETECTION_GROUP
    group.tensorNames = list(OUTPUT_DESCRIPTIONS)[:3]
    subgraph = meta.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_image_input(normalization, uint8_input)]
    subgraph.outputTensorMetadata = _outputs()
    subgraph.outputTensorGroups = [group]
    model = meta.ModelMetadataT()
    model.name = "ObjectDetector"
    model.description = description
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def embed_metadata(model: bytes, metadata: bytes, associated_files: dict[str, bytes]) -> bytes:
    """The model with `metadata` in a buffer named by its TFLITE_METADATA entry, and the associated files
    appended as a zip archive (a .tflite with metadata is also a zip file holding them)."""
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    tflite.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tflite.buffers) - 1
    tflite.metadata = [item for item in tflite.metadata or [] if item.name.decode() != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    builder.Finish(tflite.Pack(builder), TFLITE_IDENTIFIER)
    archive = io.BytesIO(bytes(builder.Output()))
    with zipfile.ZipFile(archive, "a") as files:
        for name, data in associated_files.items():
            files.writestr(name, data)
    return archive.getvalue()


def model_json(
    *,
    input_name: str,
    input_shape: Sequence[int],
    input_dtype: str,
    normalization: Normalization,
    resize_method: str,
    output_names: Sequence[tuple[str, str]],
    num_classes: int,
    max_detections: int,
    quantization: str,
    pipeline_config: str,
    checkpoint: str,
    step: int,
) -> dict[str, Any]:
    """What model.json holds: how to feed the model and read its outputs (index = position in the
    interpreter's get_output_details())."""
    return {
        "format": TFLITE_FORMAT,
        "input": {"name": input_name, "shape": [int(value) for value in input_shape], "dtype": input_dtype,
                  "normalization": normalization.as_json(), "resize": resize_method.lower()},
        "outputs": [{"index": index, "name": name, "role": role} for index, (name, role) in enumerate(output_names)],
        "class_ids": "0-based (add 1 for label_map.pbtxt ids)",
        "labels": LABELS_FILE,
        "num_classes": num_classes,
        "max_detections": max_detections,
        "quantization": quantization,
        "pipeline_config": pipeline_config,
        "checkpoint": checkpoint,
        "step": step,  # the checkpoint's training step: `tfodkit evaluate --model` logs its metrics there
    }
