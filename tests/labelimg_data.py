"""Small LabelImg datasets for the conversion tests: real encoded images and Pascal VOC XML beside them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from lxml import etree
from PIL import Image

Box = tuple[str, float, float, float, float]  # name, xmin, ymin, xmax, ymax in pixels


def image_bytes(width: int, height: int, file_format: str = "JPEG", seed: int = 0, mode: str = "RGB",
                **save_options: object) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=file_format, **save_options)
    return buffer.getvalue()


def xml_text(filename: str | None, width: int | None, height: int | None, boxes: Iterable[Box],
             path: str | None = None) -> str:
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = "images"
    if filename is not None:
        etree.SubElement(root, "filename").text = filename
    if path is not None:
        etree.SubElement(root, "path").text = path
    if width is not None and height is not None:
        size = etree.SubElement(root, "size")
        etree.SubElement(size, "width").text = str(width)
        etree.SubElement(size, "height").text = str(height)
        etree.SubElement(size, "depth").text = "3"
    for name, xmin, ymin, xmax, ymax in boxes:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = name
        etree.SubElement(obj, "pose").text = "Unspecified"
        etree.SubElement(obj, "truncated").text = "0"
        etree.SubElement(obj, "difficult").text = "0"
        bndbox = etree.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)):
            etree.SubElement(bndbox, tag).text = f"{value:g}"
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def add_image(folder: Path, name: str, boxes: Sequence[Box] | None, width: int = 40, height: int = 30,
              file_format: str = "JPEG", seed: int = 0, data: bytes | None = None) -> Path:
    """Write an image (and its XML unless `boxes` is None) into `folder`; returns the image path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data if data is not None else image_bytes(width, height, file_format, seed))
    if boxes is not None:
        path.with_suffix(".xml").write_text(xml_text(name, width, height, boxes), encoding="utf-8")
    return path


def class_dataset(folder: Path, per_class: dict[str, int], negatives: int = 0) -> list[Path]:
    """One box per image, `per_class[name]` images of each class, plus images without objects."""
    paths = []
    seed = 0
    for name, count in per_class.items():
        for index in range(count):
            seed += 1
            box = (name, 3 + index % 5, 2.5, 30 - index % 7, 25)
            paths.append(add_image(folder, f"{name}_{index:03d}.jpg", [box], seed=seed))
    for index in range(negatives):
        seed += 1
        paths.append(add_image(folder, f"empty_{index:03d}.png", [], file_format="PNG", seed=seed))
    return paths
