"""Digit scenes from the demo dataset generator as the evaluation tests' ground truth, and detections made from it."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from tfodkit import label_map as label_map_module
from tfodkit.dataset import demo_data

LABEL_MAP = label_map_module.from_class_names(demo_data.CLASS_NAMES)


@dataclasses.dataclass(frozen=True)
class EvalImage:
    """One annotated image: pixels, size, normalised boxes (ymin, xmin, ymax, xmax) and 1-based classes."""

    key: str
    image: np.ndarray
    background: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


@functools.lru_cache(maxsize=None)
def scenes(count: int, seed: int = 0) -> tuple[EvalImage, ...]:
    glyphs = demo_data.load_glyphs()
    rng = np.random.default_rng(seed)
    result = []
    for index in range(count):
        scene = demo_data.render_scene(rng, glyphs)
        height, width = scene.image.shape[:2]
        boxes = np.array([[b.ymin / height, b.xmin / width, b.ymax / height, b.xmax / width] for b in scene.boxes])
        classes = np.array([LABEL_MAP.ids[b.name] for b in scene.boxes])
        result.append(EvalImage(f"digits_{index:03d}.jpg", scene.image, scene.background, boxes, classes))
    return tuple(result)


def shifted_right(boxes: np.ndarray, width: int, iou: float) -> np.ndarray:
    """Each box moved sideways by s pixels, s chosen so that its IoU with the original is `iou`:
    for a box w pixels wide, IoU = (w - s) / (w + s)."""
    moved = boxes.copy()
    box_width = (boxes[:, 3] - boxes[:, 1]) * width
    shift = box_width * (1 - iou) / (1 + iou) / width
    moved[:, 1] += shift
    moved[:, 3] += shift
    return moved
