"""TF2 OD API checkpoints (object-based, `model/_feature_extractor/...`) loaded onto our Keras SSD by object path.

The OD API's TF2 checkpoints name variables by the Python attribute path of the objects holding them
(`model/_box_predictor/_prediction_heads/box_encodings/0/_box_encoder_layers/0/kernel`), its Keras
MobileNetV2 layers by position (`classification_backbone/layer_with_weights-N`). We rebuild that path for
each of our layers, then require a one-to-one match: every model variable in the checkpoint is used and
every variable of the chosen model parts is assigned, with the same shape.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from tfodkit.errors import TfodkitError
from tfodkit.model.ssd import SSD

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
PARTS = {"feature_extractor": "model/_feature_extractor/", "box_predictor": "model/_box_predictor/"}


@dataclass(frozen=True)
class LoadReport:
    """What a load did: (checkpoint key, model variable path) pairs and the checkpoint entries left aside."""

    checkpoint: str
    loaded: tuple[tuple[str, str], ...]
    not_model_variables: tuple[str, ...]
    other_parts: tuple[str, ...]

    def summary(self) -> str:
        """One line per category, for logs."""
        return (
            f"{self.checkpoint}: loaded {len(self.loaded)} variables; "
            f"{len(self.other_parts)} model variables of parts not requested left aside; "
            f"{len(self.not_model_variables)} non-model entries (optimizer state, counters) ignored"
        )


def _ordered(model: keras.Model, pattern: str) -> list[keras.layers.Layer]:
    """Layers of `model` whose names fully match `pattern`, in graph order."""
    regex = re.compile(pattern)
    return [layer for layer in model.layers if regex.fullmatch(layer.name)]


def _indexed(prefix: str, layers: Iterable[keras.layers.Layer]) -> dict[str, keras.layers.Layer]:
    return {f"{prefix}/{index}": layer for index, layer in enumerate(layers)}


def _backbone_paths(extractor: keras.Model) -> dict[str, keras.layers.Layer]:
    backbone = extractor.get_layer("classification_backbone")
    weighted = [layer for layer in backbone.layers if layer.weights]
    return {
        f"model/_feature_extractor/classification_backbone/layer_with_weights-{index}": layer
        for index, layer in enumerate(weighted)
    }


def _ssd_extractor_paths(extractor: keras.Model) -> dict[str, keras.layers.Layer]:
    paths = _backbone_paths(extractor)
    groups: dict[int, list[keras.layers.Layer]] = defaultdict(list)
    for layer in extractor.layers:
        match = re.match(r"layer_19_[12]_Conv2d_(\d+)_", layer.name)
        if match:
            groups[int(match.group(1))].append(layer)
    for index, layers in groups.items():
        paths.update(_indexed(f"model/_feature_extractor/feature_map_generator/convolutions/{index}", layers))
    return paths


def _fpn_extractor_paths(extractor: keras.Model) -> dict[str, keras.layers.Layer]:
    paths = _backbone_paths(extractor)
    prefix = "model/_feature_extractor/_fpn_features_generator"
    projections = _ordered(extractor, r"projection_\d+")
    num_levels = len(projections)
    paths[f"{prefix}/top_layers/0"] = extractor.get_layer(f"projection_{num_levels}")
    for block, level_index in enumerate(reversed(range(num_levels - 1))):
        paths[f"{prefix}/residual_blocks/{block}/0"] = extractor.get_layer(f"projection_{level_index + 1}")
        smoothing = _ordered(extractor, rf"smoothing_{level_index + 1}(_.*)?")
        paths.update(_indexed(f"{prefix}/conv_layers/{block}", smoothing))
    coarse = sorted(
        {int(m.group(1)) for m in (re.match(r"bottom_up_Conv2d_(\d+)", l.name) for l in extractor.layers) if m}
    )
    for block, number in enumerate(coarse):
        layers = _ordered(extractor, rf"bottom_up_Conv2d_{number}(_.*)?")
        paths.update(_indexed(f"model/_feature_extractor/_coarse_feature_layers/{block}", layers))
    return paths


def _convolutional_predictor_paths(predictor: keras.Model) -> dict[str, keras.layers.Layer]:
    paths: dict[str, keras.layers.Layer] = {}
    prefix = "model/_box_predictor"
    count = len(_ordered(predictor, r"BoxPredictor_\d+_BoxEncodingPredictor"))
    for index in range(count):
        shared = _ordered(predictor, rf"BoxPredictor_{index}_SharedConvolutions_.*")
        paths.update(_indexed(f"{prefix}/_shared_nets/{index}", shared))
        box = _ordered(predictor, rf"BoxPredictor_{index}_BoxEncodingPredictor(_.*)?")
        paths.update(_indexed(f"{prefix}/_prediction_heads/box_encodings/{index}/_box_encoder_layers", box))
        cls = _ordered(predictor, rf"BoxPredictor_{index}_(Dropout|ClassPredictor(_.*)?)")
        paths.update(
            _indexed(
                f"{prefix}/_prediction_heads/class_predictions_with_background/{index}/_class_predictor_layers", cls
            )
        )
    return paths


def _weight_shared_predictor_paths(predictor: keras.Model) -> dict[str, keras.layers.Layer]:
    paths: dict[str, keras.layers.Layer] = {}
    prefix = "model/_box_predictor"
    heads = {"box_encodings": "BoxPredictionTower", "class_predictions_with_background": "ClassPredictionTower"}
    shared = bool(_ordered(predictor, r"PredictionTower_conv2d_\d+"))
    towers = ["PredictionTower"] if shared else list(heads.values())
    for tower in towers:
        convs = _ordered(predictor, rf"{tower}_conv2d_\d+")
        paths.update(_indexed(f"{prefix}/_head_scope_conv_layers/{tower}", convs))
        levels = sorted(
            {int(m.group(1)) for m in (re.search(r"_feature_(\d+)$", l.name) for l in predictor.layers) if m}
        )
        head = "box_encodings" if tower != "ClassPredictionTower" else "class_predictions_with_background"
        for level in levels:
            stack: list[keras.layers.Layer] = []
            for i, conv in enumerate(convs):
                stack.append(conv)
                stack.extend(_ordered(predictor, rf"{tower}_conv2d_{i}_(BatchNorm|activation)_feature_{level}"))
            paths.update(_indexed(f"{prefix}/_base_tower_layers_for_heads/{head}/{level}", stack))
    for level, layer in enumerate(_ordered(predictor, r"ProjectionLayer_conv2d_\d+")):
        layers = [layer] + _ordered(predictor, rf"ProjectionLayer_conv2d_{level}_BatchNorm")
        paths.update(_indexed(f"{prefix}/_additional_projection_layers/{level}", layers))
    paths[f"{prefix}/_box_prediction_head/_box_encoder_layers/0"] = predictor.get_layer("BoxPredictor")
    cls = _ordered(predictor, r"ClassPredictor_Dropout_0|ClassPredictor")
    paths.update(_indexed(f"{prefix}/_prediction_heads/class_predictions_with_background/_class_predictor_layers", cls))
    return paths


def object_paths(model: SSD) -> dict[str, keras.layers.Layer]:
    """OD API TF2 object path (without the variable name) -> our layer, for every layer that may hold weights."""
    extractor = model.feature_extractor
    is_fpn = bool(_ordered(extractor, r"projection_\d+"))
    paths = _fpn_extractor_paths(extractor) if is_fpn else _ssd_extractor_paths(extractor)
    predictor = model.box_predictor
    if _ordered(predictor, r"BoxPredictor_\d+_BoxEncodingPredictor"):
        paths.update(_convolutional_predictor_paths(predictor))
    else:
        paths.update(_weight_shared_predictor_paths(predictor))
    return paths


def _variable_map(model: SSD) -> dict[str, keras.Variable]:
    """Checkpoint key -> our variable (several keys may name one shared variable; the checkpoint holds one)."""
    mapping = {}
    for path, layer in object_paths(model).items():
        for variable in layer.weights:
            name = variable.name
            if isinstance(layer, keras.layers.DepthwiseConv2D) and name == "kernel":
                name = "depthwise_kernel"  # Keras 3 renamed tf.keras's depthwise_kernel
            mapping[f"{path}/{name}{VALUE_SUFFIX}"] = variable
    return mapping


def _checkpoint_prefix(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest is None:
            raise TfodkitError(f"{path}: no TF2 checkpoint found in this folder (no `checkpoint` file)")
        return latest
    return str(path)


def load_tf2_checkpoint(
    model: SSD, checkpoint: str | Path, parts: Iterable[str] = ("feature_extractor", "box_predictor")
) -> LoadReport:
    """Assign the variables of an OD API TF2 checkpoint (prefix like .../ckpt-0, or its folder) to `model`.

    `parts` picks feature_extractor and/or box_predictor; within them the match must be one-to-one and
    shape-exact, otherwise a TfodkitError lists the unused checkpoint variables and unassigned model ones.
    """
    parts = tuple(parts)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise TfodkitError(f"checkpoint parts {unknown} unknown; choose from {sorted(PARTS)}")
    prefix = _checkpoint_prefix(checkpoint)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise TfodkitError(f"{prefix}: cannot read as a TF2 checkpoint ({error})") from None
    keys = sorted(reader.get_variable_to_shape_map())
    model_keys = [k for k in keys if k.startswith("model/") and k.endswith(VALUE_SUFFIX) and ".OPTIMIZER_SLOT" not in k]
    not_model = tuple(k for k in keys if k not in set(model_keys))
    wanted = tuple(PARTS[part] for part in parts)
    chosen = [k for k in model_keys if k.startswith(wanted)]
    other_parts = tuple(k for k in model_keys if not k.startswith(wanted))
    mapping = {key: var for key, var in _variable_map(model).items() if key.startswith(wanted)}

    unused = [k for k in chosen if k not in mapping]
    assigned: dict[int, tuple[keras.Variable, np.ndarray, str]] = {}
    problems = []
    for key in chosen:
        variable = mapping.get(key)
        if variable is None:
            continue
        value = reader.get_tensor(key)
        if tuple(value.shape) != tuple(variable.shape):
            problems.append(
                f"{key}: checkpoint shape {list(value.shape)} != model {variable.path} {list(variable.shape)}"
            )
            continue
        assigned[id(variable)] = (variable, value, key)
    part_models = [getattr(model, part) for part in parts]
    unassigned = [v.path for m in part_models for v in m.weights if id(v) not in assigned]
    if unused or unassigned or problems:
        lines = [f"{prefix}: checkpoint does not match the model built from the pipeline config (nothing was loaded)"]
        lines += [f"  shape mismatch: {p}" for p in problems]
        lines += [f"  unused checkpoint variable: {k}" for k in unused]
        lines += [f"  model variable not in checkpoint: {p}" for p in unassigned]
        raise TfodkitError("\n".join(lines))
    loaded = []
    for variable, value, key in assigned.values():
        variable.assign(np.asarray(value, dtype=variable.dtype))
        loaded.append((key, variable.path))
    return LoadReport(prefix, tuple(loaded), not_model, other_parts)
