"""Load an exported model (SavedModel directory or .tflite file) and run it on images of any size."""

from __future__ import annotations

import abc
import itertools
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfodkit import label_map as label_maps
from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import category_names
from tfodkit.export.saved_model import LABEL_MAP_FILE, PIPELINE_FILE, SAVED_MODEL_DIR
from tfodkit.model.preprocessing import FixedShapeResizer

TFLITE_SUFFIX = ".tflite"
MODEL_JSON = "model.json"
TFLITE_FORMAT = "tfodkit-tflite"
# The roles model.json gives the TFLite outputs (the metadata writers' names), and the keys detect() returns.
TFLITE_ROLES = {"location": "boxes", "category": "classes", "score": "scores", "number of detections": "count"}
# Lines of labels.txt that stand for no class (the TFLite metadata convention for unused ids).
_NO_CLASS = ("", "???")
SAVED_MODEL_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")

Detections = dict[str, np.ndarray]
# How to point at a model, for messages.
_WHAT = ("an export directory (`tfodkit export --output_directory`), its saved_model/ directory, or a .tflite file "
         "written by `tfodkit export-tflite`")


def _check_images(images: Sequence[np.ndarray]) -> None:
    for index, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(f"image {index}: expected a non-empty HxWx3 uint8 array, got {image.dtype} {image.shape}")


def valid_detections(boxes: Any, classes: Any, scores: Any, count: Any) -> Detections:
    """One image's valid rows: boxes [K, 4] float32, classes [K] int64 (1-based), scores [K] float32."""
    count = int(np.asarray(count).reshape(()))
    return {
        "boxes": np.asarray(boxes, dtype=np.float32)[:count].reshape(-1, 4),
        "classes": np.rint(np.asarray(classes, dtype=np.float64)[:count]).astype(np.int64),
        "scores": np.asarray(scores, dtype=np.float32)[:count],
    }


class Detector(abc.ABC):
    """An exported model and its label map: detect() runs it on uint8 images, as the OD API's outputs read."""

    def __init__(self, path: Path, label_map: label_maps.LabelMap, pipeline_config: Path | None, step: int) -> None:
        self.path = path
        self.label_map = label_map
        self.pipeline_config = pipeline_config  # the pipeline.config it was exported from, where known
        self.step = step  # the training step of the checkpoint it was exported from; 0 where the export does not say
        self.names = category_names(label_map)  # class id -> display name

    @abc.abstractmethod
    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Per image (uint8 HxWx3, any size): {"boxes": [K, 4] normalised ymin, xmin, ymax, xmax, "classes": [K]
        1-based label map ids, "scores": [K]}, the num_detections valid rows, highest score first."""


class SavedModelDetector(Detector):
    """A SavedModel with the OD API's image_tensor signature, called directly with uint8 batches; its step is
    the `step` variable `tfodkit export` saves (0 for a SavedModel without one, e.g. the OD API's exporter's)."""

    def __init__(self, path: Path, label_map: label_maps.LabelMap, pipeline_config: Path | None) -> None:
        try:
            model = tf.saved_model.load(str(path))
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise TfodkitError(f"{path}: cannot load the SavedModel: {error}") from None
        if not callable(model):
            raise TfodkitError(f"{path}: the SavedModel is not callable on images; export it with `tfodkit export` "
                               "(--input_type image_tensor)")
        step = getattr(model, "step", None)
        super().__init__(path, label_map, pipeline_config, int(step.numpy()) if isinstance(step, tf.Variable) else 0)
        self._model = model

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        try:
            outputs = self._model(tf.constant(batch))
        except (TypeError, ValueError) as error:
            raise TfodkitError(f"{self.path}: the SavedModel does not take uint8 image batches ({error}); export it "
                               "with `tfodkit export --input_type image_tensor`") from None
        missing = [name for name in SAVED_MODEL_OUTPUTS if name not in outputs]
        if missing:
            raise TfodkitError(f"{self.path}: the SavedModel's outputs lack {missing}; it is not an OD API detection "
                               "model")
        return {name: outputs[name].numpy() for name in SAVED_MODEL_OUTPUTS}

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Images of the same size, in a row, go through the model as one batch."""
        _check_images(images)
        results: list[Detections] = []
        for _, group in itertools.groupby(images, key=lambda image: image.shape):
            batch = np.stack(list(group))
            outputs = self._run(batch)
            results.extend(
                valid_detections(*(outputs[name][i] for name in SAVED_MODEL_OUTPUTS)) for i in range(len(batch))
            )
        return results


def _read_json(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TfodkitError(f"{path}: cannot read: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise TfodkitError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != TFLITE_FORMAT:
        raise TfodkitError(f"{path}: not the model.json of `tfodkit export-tflite` (no \"format\": "
                           f"\"{TFLITE_FORMAT}\")")
    return metadata


def _field(metadata: dict[str, Any], path: Path, *keys: str) -> Any:
    value: Any = metadata
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise TfodkitError(f"{path}: field {'.'.join(keys)} is missing")
        value = value[key]
    return value


def _step(metadata: dict[str, Any], path: Path) -> int:
    """model.json's optional "step": the training step of the exported checkpoint (0 when absent)."""
    step = metadata.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TfodkitError(f"{path}: field step is {step!r}; expected the exported checkpoint's training step, a "
                           "whole number >= 0")
    return step


def _labels_txt(path: Path) -> label_maps.LabelMap:
    """labels.txt: line i names the class of 0-based id i (label map id i + 1); "???" or blank: no class."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise TfodkitError(f"{path}: cannot read the labels: {error.strerror}") from None
    ids = {line.strip(): index + 1 for index, line in enumerate(lines) if line.strip() not in _NO_CLASS}
    if not ids:
        raise TfodkitError(f"{path}: no class names")
    return label_maps.LabelMap(ids=ids, display_names={})


class TFLiteDetector(Detector):
    """A .tflite detection model run by LiteRT, fed and read as its model.json says."""

    def __init__(self, path: Path, metadata: dict[str, Any], metadata_path: Path, label_map: label_maps.LabelMap,
                 pipeline_config: Path | None) -> None:
        super().__init__(path, label_map, pipeline_config, _step(metadata, metadata_path))
        try:
            self._interpreter = Interpreter(model_path=str(path))
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            raise TfodkitError(f"{path}: LiteRT cannot load the model: {error}") from None
        (self._input,) = self._interpreter.get_input_details()
        shape = [int(value) for value in _field(metadata, metadata_path, "input", "shape")]
        if list(self._input["shape"]) != shape or len(shape) != 4 or shape[0] != 1:
            raise TfodkitError(f"{metadata_path}: input.shape {shape} does not match the model's input "
                               f"{list(self._input['shape'])} in {path}")
        dtype = _field(metadata, metadata_path, "input", "dtype")
        if dtype not in ("float32", "uint8") or np.dtype(dtype) != self._input["dtype"]:
            raise TfodkitError(f"{metadata_path}: input.dtype {dtype!r} does not match the model's input "
                               f"{np.dtype(self._input['dtype']).name}")
        normalization = _field(metadata, metadata_path, "input", "normalization")
        self._mean = np.asarray(_field(normalization, metadata_path, "mean"), dtype=np.float32)
        self._std = np.asarray(_field(normalization, metadata_path, "std"), dtype=np.float32)
        method = str(_field(metadata, metadata_path, "input", "resize")).upper()
        if not hasattr(tf.compat.v1.image.ResizeMethod, method):
            raise TfodkitError(f"{metadata_path}: input.resize {method.lower()!r} is not a resize method")
        self._resizer = FixedShapeResizer(shape[1], shape[2], method)
        self._outputs = self._output_indices(metadata, metadata_path)

    def _output_indices(self, metadata: dict[str, Any], metadata_path: Path) -> dict[str, int]:
        """detect()'s key -> the interpreter's tensor index, from model.json's outputs (index = the output's
        position in the model's output list)."""
        details = self._interpreter.get_output_details()
        found: dict[str, int] = {}
        for output in _field(metadata, metadata_path, "outputs"):
            role, index = output.get("role"), output.get("index")
            if role in TFLITE_ROLES and isinstance(index, int) and 0 <= index < len(details):
                found[TFLITE_ROLES[role]] = details[index]["index"]
        missing = [role for role, key in TFLITE_ROLES.items() if key not in found]
        if missing:
            raise TfodkitError(f"{metadata_path}: outputs lack a valid index for the role(s) {missing}")
        return found

    def _input_tensor(self, image: np.ndarray) -> np.ndarray:
        resized = self._resizer(image[np.newaxis]).numpy()
        if self._input["dtype"] == np.uint8:
            return np.clip(np.round(resized), 0, 255).astype(np.uint8)
        return ((resized - self._mean) / self._std).astype(np.float32)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One image at a time (the model's batch is 1); TFLite's 0-based classes become label map ids."""
        _check_images(images)
        results = []
        for image in images:
            self._interpreter.set_tensor(self._input["index"], self._input_tensor(image))
            self._interpreter.invoke()
            boxes, classes, scores, count = (
                self._interpreter.get_tensor(self._outputs[key])[0] for key in ("boxes", "classes", "scores", "count"))
            results.append(valid_detections(boxes, np.asarray(classes) + 1, scores, count))
        return results


def _beside(path: Path, what: str) -> Path:
    if not path.is_file():
        raise TfodkitError(f"{path}: not found; it holds {what} and is written beside the model by the export")
    return path


def _load_tflite(path: Path) -> TFLiteDetector:
    metadata_path = _beside(path.parent / MODEL_JSON, "the model's input size, normalisation and output order")
    metadata = _read_json(metadata_path)
    labels = _beside(path.parent / str(_field(metadata, metadata_path, "labels")), "the class names")
    pipeline = metadata.get("pipeline_config")  # relative to the model's folder (or absolute)
    pipeline_path = path.parent / pipeline if pipeline else None
    return TFLiteDetector(path, metadata, metadata_path, _labels_txt(labels), pipeline_path)


def _load_saved_model(path: Path) -> SavedModelDetector:
    if (path / "saved_model.pb").is_file():
        export_dir, saved_model = path.parent, path
    elif (path / SAVED_MODEL_DIR / "saved_model.pb").is_file():
        export_dir, saved_model = path, path / SAVED_MODEL_DIR
    else:
        raise TfodkitError(f"--model {path}: no SavedModel here (no saved_model/saved_model.pb); give {_WHAT}")
    label_map = export_dir / LABEL_MAP_FILE
    if not label_map.is_file():
        raise TfodkitError(f"{label_map}: not found; the export directory holds the model's label map beside "
                           f"saved_model/ (export again with `tfodkit export`)")
    pipeline = export_dir / PIPELINE_FILE
    return SavedModelDetector(saved_model, label_maps.load(label_map), pipeline if pipeline.is_file() else None)


def load_detector(path: str | Path) -> Detector:
    """The exported model at `path`: an export directory (saved_model/, label_map.pbtxt, pipeline.config), a
    saved_model directory inside one, or a .tflite file with its model.json and labels.txt beside it."""
    path = Path(path)
    if path.suffix == TFLITE_SUFFIX:
        if not path.is_file():
            raise TfodkitError(f"--model {path}: no such file; give {_WHAT}")
        return _load_tflite(path)
    if not path.is_dir():
        raise TfodkitError(f"--model {path}: no such directory or .tflite file; give {_WHAT}")
    return _load_saved_model(path)
