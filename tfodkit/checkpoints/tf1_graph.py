"""OD API TF1 weights (frozen graph Consts or a slim checkpoint) by variable name, mapped onto our Keras SSD."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfodkit.errors import TfodkitError

# Last component of every slim variable that holds a model weight (anything else in a checkpoint is
# optimizer state, moving-average shadows or the global step).
WEIGHT_SUFFIXES = ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")
BACKBONE_SCOPE = "FeatureExtractor/MobilenetV2/"


@dataclass(frozen=True)
class Tf1Weights:
    """The weights of a TF1 OD API model: slim variable name -> array, plus the entries that are not weights."""

    source: str
    arrays: Mapping[str, np.ndarray]
    skipped: tuple[str, ...] = ()


@dataclass
class Assignment:
    """What an import wrote: model variable paths loaded / left alone, and source weights not used."""

    source: str
    loaded: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A short human-readable account of the import."""
        lines = [f"{self.source}: loaded {len(self.loaded)} model variables, "
                 f"left {len(self.not_loaded)} at their initial values, {len(self.unused)} source weights unused"]
        for title, names in (("not loaded", self.not_loaded), ("unused", self.unused)):
            if names:
                lines.append(f"  {title}: " + ", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))
        return "\n".join(lines)


def read_tf1_weights(path: str | Path) -> Tf1Weights:
    """Read the weights of an OD API TF1 model from a frozen graph (.pb) or a checkpoint prefix/folder."""
    path = Path(path)
    if path.suffix == ".pb":
        return _read_frozen_graph(path)
    return _read_checkpoint(path)


def _read_frozen_graph(path: Path) -> Tf1Weights:
    if not path.is_file():
        raise TfodkitError(f"{path}: frozen graph not found")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf raises its own DecodeError type
        raise TfodkitError(f"{path}: not a TensorFlow GraphDef ({error})") from error
    # freeze_graph turns each variable into a Const and keeps the `<name>/read` Identity that used it.
    read_inputs = {node.input[0] for node in graph_def.node if node.op == "Identity" and node.name.endswith("/read")}
    arrays = {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const" and node.name in read_inputs
    }
    if not arrays:
        raise TfodkitError(
            f"{path}: no frozen variables found (Const nodes read through '<name>/read'); graphs rewritten by "
            "optimize_for_inference or transform_graph (identities stripped, batch norm folded) cannot be mapped "
            "back to variables: use the export's own frozen_inference_graph.pb or its model.ckpt")
    return Tf1Weights(source=str(path), arrays=arrays)


def _checkpoint_reader(path: Path) -> tf.train.CheckpointReader:
    try:
        return tf.train.load_checkpoint(str(path))
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise TfodkitError(f"{path}: not a TensorFlow checkpoint prefix or folder ({error})") from error


def _read_checkpoint(path: Path) -> Tf1Weights:
    reader = _checkpoint_reader(path)
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    for name in sorted(reader.get_variable_to_shape_map()):
        if name.rsplit("/", 1)[-1] in WEIGHT_SUFFIXES:
            arrays[name] = reader.get_tensor(name)
        else:
            skipped.append(name)
    if not arrays:
        raise TfodkitError(f"{path}: checkpoint holds no slim weights (names ending in {', '.join(WEIGHT_SUFFIXES)})")
    return Tf1Weights(source=str(path), arrays=arrays, skipped=tuple(skipped))


def in_feature_extractor_scope(weights: Tf1Weights) -> Tf1Weights:
    """Names of a slim classification checkpoint (MobilenetV2/...) as the OD API nests them (FeatureExtractor/...).

    Detection graphs and checkpoints, already under FeatureExtractor/, are returned unchanged.
    """
    if any(name.startswith("FeatureExtractor/") for name in weights.arrays):
        return weights
    arrays = {f"FeatureExtractor/{name}": value for name, value in weights.arrays.items()}
    return Tf1Weights(source=weights.source, arrays=arrays, skipped=weights.skipped)


def is_tf1_checkpoint(path: str | Path) -> bool:
    """True when a checkpoint names its variables the TF1 slim way (no TF2 object graph)."""
    names = _checkpoint_reader(Path(path)).get_variable_to_shape_map()
    return "_CHECKPOINTABLE_OBJECT_GRAPH" not in names


def backbone_scope(layer_name: str) -> str | None:
    """The slim scope of a keras.applications MobileNetV2 layer, or None when it is not one."""
    fixed = {"Conv1": "Conv", "bn_Conv1": "Conv", "Conv_1": "Conv_1", "Conv_1_bn": "Conv_1",
             "expanded_conv_depthwise": "expanded_conv/depthwise", "expanded_conv_depthwise_BN": "expanded_conv/depthwise",
             "expanded_conv_project": "expanded_conv/project", "expanded_conv_project_BN": "expanded_conv/project"}
    if layer_name in fixed:
        return BACKBONE_SCOPE + fixed[layer_name]
    match = re.fullmatch(r"block_(\d+)_(expand|depthwise|project)(_BN)?", layer_name)
    if match:
        return f"{BACKBONE_SCOPE}expanded_conv_{match.group(1)}/{match.group(2)}"
    return None


def detector_scope(layer_name: str) -> str | None:
    """The slim scope of any layer of our SSD MobileNetV2 model (backbone, extra layers, box predictor)."""
    scope = backbone_scope(layer_name)
    if scope is not None:
        return scope
    # Extra layers: <op>_conv / <op>_batchnorm / <op>_depthwise_conv / <op>_depthwise_batchnorm.
    match = re.fullmatch(r"(layer_19_[12]_Conv2d_\d+_\w+?)(_depthwise)?_(conv|batchnorm)", layer_name)
    if match:
        return BACKBONE_SCOPE + match.group(1) + (match.group(2) or "")
    # Convolutional box predictor heads: BoxPredictor_i_<Head>[_depthwise[_batchnorm]].
    match = re.fullmatch(r"(BoxPredictor_\d+)_((?:BoxEncoding|Class)Predictor(?:_depthwise)?)(_batchnorm)?", layer_name)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    return None


def slim_variable_name(scope: str, layer: keras.layers.Layer, variable_name: str) -> str:
    """The slim variable that holds `variable_name` (kernel, bias, gamma, ...) of `layer` under `scope`."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return f"{scope}/BatchNorm/{variable_name}"
    if variable_name == "bias":
        return f"{scope}/biases"
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return f"{scope}/depthwise_weights"
    return f"{scope}/weights"


def weighted_layers(model: keras.Model) -> Iterable[keras.layers.Layer]:
    """Every layer holding variables in `model`, nested models searched, in build order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from weighted_layers(layer)
        elif layer.weights:
            yield layer


def assign_slim_weights(
    model: keras.Model,
    weights: Tf1Weights,
    scope_of: Callable[[str], str | None],
    wanted: Callable[[str], bool] = lambda name: True,
) -> Assignment:
    """Copy slim weights onto every model layer that `scope_of` maps; report both sides' leftovers.

    `wanted(slim_name)` says which source weights this import is meant to use; unused wanted weights
    are reported in `Assignment.unused`.
    """
    assignment = Assignment(source=weights.source)
    used: set[str] = set()
    for layer in weighted_layers(model):
        scope = scope_of(layer.name)
        for variable in layer.weights:
            if scope is None:
                assignment.not_loaded.append(variable.path)
                continue
            slim_name = slim_variable_name(scope, layer, variable.name)
            value = weights.arrays.get(slim_name)
            if value is None:
                assignment.not_loaded.append(variable.path)
                continue
            if tuple(value.shape) != tuple(variable.shape):
                raise TfodkitError(
                    f"{weights.source}: {slim_name} has shape {tuple(value.shape)} but model variable "
                    f"{variable.path} has shape {tuple(variable.shape)}: the pipeline config does not "
                    "describe this graph")
            variable.assign(value.astype(variable.dtype))
            used.add(slim_name)
            assignment.loaded.append(variable.path)
    assignment.unused = sorted(name for name in weights.arrays if wanted(name) and name not in used)
    return assignment


def require_complete(assignment: Assignment, weights: Tf1Weights) -> None:
    """Raise a TfodkitError listing leftovers unless every model variable and wanted weight was used."""
    if not assignment.not_loaded and not assignment.unused:
        return
    message = [f"{weights.source}: the graph and the model do not match one to one"]
    if assignment.not_loaded:
        message.append("model variables with no graph weight: " + ", ".join(assignment.not_loaded))
    if assignment.unused:
        message.append("graph weights with no model variable: " + ", ".join(assignment.unused))
    raise TfodkitError("\n".join(message))


def import_tf1_detector(model: keras.Model, path: str | Path) -> Assignment:
    """Load every weight of an OD API TF1 SSD-MobileNetV2 graph/checkpoint into `model`, one to one."""
    weights = read_tf1_weights(path)
    assignment = assign_slim_weights(model, weights, detector_scope)
    require_complete(assignment, weights)
    return assignment
