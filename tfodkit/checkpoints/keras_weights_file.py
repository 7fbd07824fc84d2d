"""Read a Keras weights file (.weights.h5 of Keras 3, or a legacy .h5 as keras.applications ships) by layer name."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tfodkit.errors import TfodkitError


def read_keras_weights_file(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> that layer's arrays, in the order of `layer.weights`."""
    path = Path(path)
    if not path.is_file():
        raise TfodkitError(f"{path}: weights file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise TfodkitError(f"{path}: not an HDF5 weights file ({error})") from error
    with handle:
        legacy_root = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" in legacy_root.attrs:
            layers = _read_legacy(legacy_root)
        else:
            layers = _read_keras3(handle, path)
    if not layers:
        raise TfodkitError(f"{path}: the file holds no layer weights")
    return layers


def _text(value: bytes | str) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_legacy(root: h5py.Group) -> dict[str, list[np.ndarray]]:
    # Keras 2 layout: root attr layer_names; each layer group lists its datasets in attr weight_names.
    layers: dict[str, list[np.ndarray]] = {}
    for layer_name in map(_text, root.attrs["layer_names"]):
        group = root[layer_name]
        names = [_text(name) for name in group.attrs.get("weight_names", [])]
        if names:
            layers[layer_name] = [np.asarray(group[name]) for name in names]
    return layers


def _read_keras3(handle: h5py.File, path: Path) -> dict[str, list[np.ndarray]]:
    # Keras 3 layout: .../<attribute>/vars/<index> datasets; the vars group carries the layer's name.
    layers: dict[str, list[np.ndarray]] = {}

    def visit(name: str, item: h5py.Group | h5py.Dataset) -> None:
        if not isinstance(item, h5py.Group) or not name.endswith("vars") or not len(item):
            return
        if "name" not in item.attrs:
            raise TfodkitError(f"{path}: group {name} has weights but no layer name attribute")
        layer_name = _text(item.attrs["name"])
        if layer_name in layers:
            raise TfodkitError(f"{path}: two layers are named {layer_name!r}; cannot match them by name")
        layers[layer_name] = [np.asarray(item[index]) for index in sorted(item, key=int)]

    handle.visititems(visit)
    return layers
