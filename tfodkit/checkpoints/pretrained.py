"""fine_tune_checkpoint restoration (classification / detection / full) and the offline backbone export."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Callable

import keras

from tfodkit.checkpoints import tf1_graph, tf2_checkpoint
from tfodkit.checkpoints.keras_weights_file import read_keras_weights_file
from tfodkit.checkpoints.tf1_graph import Assignment, backbone_scope, weighted_layers
from tfodkit.errors import TfodkitError
from tfodkit.model.ssd import SSD

# As the OD API's SSD restore_from_objects: classification = backbone only; detection = the whole
# feature extractor (backbone + extra layers / FPN); full = everything, box predictor included.
CHECKPOINT_TYPES = ("classification", "detection", "full")


def restore_fine_tune_checkpoint(
    model: SSD,
    checkpoint: str | Path,
    checkpoint_type: str,
    report: Callable[[str], None] = print,
) -> Assignment:
    """Restore the part of `model` that `checkpoint_type` names from a Keras, TF1 or TF2 source.

    Sources: a Keras weights file (.h5 / .weights.h5, matched by layer name), an OD API TF1 frozen
    graph (.pb) or TF1 checkpoint (slim names), an OD API TF2 checkpoint (ckpt-N, object paths).
    Every model variable of the chosen part must be found in the source, else TfodkitError.
    """
    if checkpoint_type not in CHECKPOINT_TYPES:
        raise TfodkitError(f"fine_tune_checkpoint_type: {checkpoint_type!r} is not one of {', '.join(CHECKPOINT_TYPES)}")
    path = Path(checkpoint)
    if path.suffix == ".h5":
        assignment = _restore_keras_file(model, path, checkpoint_type)
    elif path.suffix == ".pb" or tf1_graph.is_tf1_checkpoint(path):
        assignment = _restore_tf1(model, path, checkpoint_type)
    else:
        assignment = _restore_tf2(model, path, checkpoint_type)
    report(f"fine_tune_checkpoint ({checkpoint_type}) " + assignment.summary())
    _require_part_loaded(model, assignment, checkpoint_type)
    return assignment


def restored_part(model: SSD, checkpoint_type: str) -> keras.Model:
    """The sub-model a fine_tune_checkpoint_type restores (the whole model for `full`)."""
    if checkpoint_type == "classification":
        return model.feature_extractor.get_layer("classification_backbone")
    if checkpoint_type == "detection":
        return model.feature_extractor
    return model


def _require_part_loaded(model: SSD, assignment: Assignment, checkpoint_type: str) -> None:
    if not assignment.loaded:
        raise TfodkitError(f"{assignment.source}: no weight matched the model for fine_tune_checkpoint_type "
                           f"{checkpoint_type!r}")
    loaded = set(assignment.loaded)
    missing = [variable.path for variable in restored_part(model, checkpoint_type).weights if variable.path not in loaded]
    if missing:
        raise TfodkitError(f"{assignment.source}: fine_tune_checkpoint_type {checkpoint_type!r} needs these model "
                           "variables but the checkpoint has none for them: " + ", ".join(missing))


def _restore_keras_file(model: SSD, path: Path, checkpoint_type: str) -> Assignment:
    layers = read_keras_weights_file(path)
    part = {id(layer) for layer in weighted_layers(restored_part(model, checkpoint_type))}
    assignment = Assignment(source=str(path))
    used: set[str] = set()
    for layer in weighted_layers(model):
        arrays = layers.get(layer.name) if id(layer) in part else None
        if arrays is None:
            assignment.not_loaded.extend(variable.path for variable in layer.weights)
            continue
        shapes = [tuple(array.shape) for array in arrays]
        wanted = [tuple(variable.shape) for variable in layer.weights]
        if shapes != wanted:
            raise TfodkitError(f"{path}: layer {layer.name!r} holds shapes {shapes} but the model's layer has {wanted}")
        for variable, array in zip(layer.weights, arrays):
            variable.assign(array.astype(variable.dtype))
            assignment.loaded.append(variable.path)
        used.add(layer.name)
    assignment.unused = sorted(name for name in layers if name not in used)
    return assignment


def _restore_tf1(model: SSD, path: Path, checkpoint_type: str) -> Assignment:
    weights = tf1_graph.in_feature_extractor_scope(tf1_graph.read_tf1_weights(path))
    part = {id(layer) for layer in weighted_layers(restored_part(model, checkpoint_type))}
    names = {layer.name for layer in weighted_layers(model) if id(layer) in part}

    def wanted(slim_name: str) -> bool:
        if checkpoint_type == "classification":
            return slim_name.startswith(tf1_graph.BACKBONE_SCOPE) and "/layer_19_" not in slim_name
        if checkpoint_type == "detection":
            return slim_name.startswith("FeatureExtractor/")
        return True

    return tf1_graph.assign_slim_weights(
        model, weights, lambda name: tf1_graph.detector_scope(name) if name in names else None, wanted)


def _restore_tf2(model: SSD, path: Path, checkpoint_type: str) -> Assignment:
    if checkpoint_type == "classification":
        raise TfodkitError(f"{path}: an OD API TF2 detection checkpoint restores with fine_tune_checkpoint_type "
                           "'detection' or 'full'; for 'classification' use a Keras MobileNetV2 weights file")
    parts = ("feature_extractor",) if checkpoint_type == "detection" else ("feature_extractor", "box_predictor")
    loaded = tf2_checkpoint.load_tf2_checkpoint(model, path, parts)
    paths = {variable_path for _, variable_path in loaded.loaded}
    return Assignment(
        source=loaded.checkpoint,
        loaded=sorted(paths),
        not_loaded=[variable.path for variable in model.weights if variable.path not in paths],
        unused=list(loaded.other_parts),
    )


def package_frozen_graph(distribution: str) -> Path:
    """The single frozen_inference_graph-style .pb file an installed pip distribution ships."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as error:
        raise TfodkitError(f"--from-package: distribution {distribution!r} is not installed") from error
    graphs = [file for file in files if file.suffix == ".pb"]
    if len(graphs) != 1:
        raise TfodkitError(f"--from-package: {distribution!r} ships {len(graphs)} .pb files, expected exactly one")
    return Path(str(graphs[0].locate()))


def export_backbone(source: str | Path, out: str | Path, report: Callable[[str], None] = print) -> Path:
    """Write the MobileNetV2 backbone of a TF1 OD API graph/checkpoint as a Keras weights file.

    The file holds a keras.applications.MobileNetV2 (alpha 1.0, no top) and is a valid
    `fine_tune_checkpoint` for `fine_tune_checkpoint_type: "classification"`.
    """
    out = Path(out)
    if not out.name.endswith(".weights.h5"):
        raise TfodkitError(f"--out {out}: Keras weights files must end in .weights.h5")
    weights = tf1_graph.read_tf1_weights(source)
    backbone = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, include_top=False, weights=None)
    assignment = tf1_graph.assign_slim_weights(
        backbone, weights, backbone_scope,
        wanted=lambda name: name.startswith(tf1_graph.BACKBONE_SCOPE) and "/layer_19_" not in name)
    tf1_graph.require_complete(assignment, weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    backbone.save_weights(out)
    report(f"wrote {out}: {len(assignment.loaded)} MobileNetV2 variables from {weights.source}")
    return out
