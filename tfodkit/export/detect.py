"""Run an exported model on image files: a drawing and a JSON per image, and LabelImg XML pre-labels."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from tfodkit.dataset.images import inspect_image, read_bytes
from tfodkit.dataset.labelimg_xml import annotation_xml
from tfodkit.errors import InputFileError, TfodkitError
from tfodkit.evaluation.images import VisualizationOptions, detections_image
from tfodkit.export.runtime import Detections, Detector

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
XML_SUFFIX = ".xml"
# <source><database> of the XML files written here (LabelImg writes "Unknown").
XML_DATABASE = "tfodkit detect (pre-labels to review)"


@dataclasses.dataclass(frozen=True)
class DetectOptions:
    """What to run on and what to write."""

    images: tuple[Path, ...]  # image files, and folders whose .jpg/.jpeg/.png/.bmp files are all taken
    out: Path  # drawings (<stem>.png) and JSON files (<stem>.json)
    min_score: float = 0.5
    labelimg: bool = False  # write a LabelImg XML per image...
    labelimg_dir: Path | None = None  # ...into this folder (default: beside the image)
    overwrite: bool = False  # replace existing XML files (never replaced otherwise)
    progress: bool = True


@dataclasses.dataclass
class DetectResult:
    """Every file written, and what was left out with why."""

    drawings: list[Path] = dataclasses.field(default_factory=list)
    json_files: list[Path] = dataclasses.field(default_factory=list)
    xml_files: list[Path] = dataclasses.field(default_factory=list)
    skipped_xml: list[Path] = dataclasses.field(default_factory=list)  # existed; left unchanged
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)  # images not processed, reason


def image_files(sources: Sequence[Path]) -> list[Path]:
    """The image files named: files as given, folders' image files (by suffix, sorted); each once."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(path for path in source.iterdir()
                           if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise TfodkitError(f"--images {source}: no {'/'.join(IMAGE_SUFFIXES)} files in this folder")
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise TfodkitError(f"--images {source}: no such file or folder")
    return list(dict.fromkeys(files))


def _check_outputs(files: list[Path], out: Path) -> None:
    """Outputs are named by the image's stem: two images with one stem would overwrite each other's, and a
    drawing must not replace an input PNG (--out the images' own folder)."""
    by_stem = collections.defaultdict(list)
    for path in files:
        by_stem[path.stem].append(path)
    clashes = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashes:
        listed = "; ".join(", ".join(str(path) for path in paths) for paths in clashes[:5])
        raise TfodkitError(f"--images: images share a file name stem, so their outputs would collide: {listed}; "
                           "run them separately (another --out)")
    inputs = {path.resolve() for path in files}
    replaced = [path for path in files if (out / f"{path.stem}.png").resolve() in inputs]
    if replaced:
        raise TfodkitError(f"--out {out}: the drawing of {replaced[0]} would replace that image; choose another "
                           "--out folder")


def decode_image(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, pixels as stored (no EXIF rotation: make-tfrecords' default), decoded by
    TensorFlow as training decodes records; unreadable or damaged files raise InputFileError."""
    data = read_bytes(path)
    inspect_image(data, path)
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise InputFileError(path, f"cannot decode the image: {getattr(error, 'message', error)}") from None


def kept_detections(detections: Detections, min_score: float) -> Detections:
    """The detections scoring at least min_score, in the model's order (highest score first)."""
    keep = detections["scores"] >= min_score
    return {key: value[keep] for key, value in detections.items()}


def pixel_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised [K, 4] ymin, xmin, ymax, xmax -> pixel [K, 4] xmin, ymin, xmax, ymax (floats)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return boxes[:, [1, 0, 3, 2]] * np.array([width, height, width, height], dtype=np.float64)


def labelimg_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes as LabelImg stores them: integer xmin, ymin, xmax, ymax, rounded and kept inside the image;
    and which of them to write: those at least one pixel wide and high after rounding."""
    corners = np.rint(pixel_boxes(boxes, width, height)).astype(np.int64)
    corners = np.clip(corners, 0, np.array([width, height, width, height]))
    return corners, (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])


def class_name(detector: Detector, class_id: int) -> str:
    """The label map name of a class id (what LabelImg XML and make-tfrecords use); the id itself if unknown."""
    return detector.label_map.names_by_id().get(int(class_id), str(int(class_id)))


def detections_json(path: Path, image: np.ndarray, detections: Detections, detector: Detector,
                    min_score: float) -> dict[str, Any]:
    """One image's record: file, size, and each detection's class, score and box (normalised and pixels)."""
    height, width = image.shape[:2]
    pixels = pixel_boxes(detections["boxes"], width, height)
    return {
        "image": str(path),
        "width": width,
        "height": height,
        "model": str(detector.path),
        "min_score": min_score,
        "detections": [
            {
                "class_id": int(class_id),
                "class_name": class_name(detector, class_id),
                "score": float(score),
                "box": dict(zip(("ymin", "xmin", "ymax", "xmax"), (float(v) for v in box))),
                "box_pixels": dict(zip(("xmin", "ymin", "xmax", "ymax"), (float(v) for v in corners))),
            }
            for class_id, score, box, corners in zip(
                detections["classes"], detections["scores"], detections["boxes"], pixels)
        ],
    }


def _write_xml(path: Path, image: np.ndarray, detections: Detections, detector: Detector, options: DetectOptions,
               result: DetectResult) -> None:
    target = (options.labelimg_dir or path.parent) / (path.stem + XML_SUFFIX)
    if target.exists() and not options.overwrite:
        result.skipped_xml.append(target)
        return
    height, width = image.shape[:2]
    corners, keep = labelimg_boxes(detections["boxes"], width, height)
    names = [class_name(detector, class_id) for class_id in detections["classes"][keep]]
    target.write_bytes(annotation_xml(
        folder=path.resolve().parent.name, filename=path.name, path=str(path.resolve()), database=XML_DATABASE,
        width=width, height=height, objects=[(name, *box) for name, box in zip(names, corners[keep])]))
    result.xml_files.append(target)


def _process(path: Path, detector: Detector, options: DetectOptions, result: DetectResult) -> None:
    image = decode_image(path)
    (detections,) = detector.detect([image])
    detections = kept_detections(detections, options.min_score)
    drawing = detections_image(image, detections["boxes"], detections["scores"], detections["classes"],
                               detector.names, VisualizationOptions(min_score_threshold=options.min_score,
                                                                    max_boxes=len(detections["scores"])))
    drawing_path = options.out / f"{path.stem}.png"
    Image.fromarray(drawing).save(drawing_path)
    result.drawings.append(drawing_path)
    json_path = options.out / f"{path.stem}.json"
    record = detections_json(path, image, detections, detector, options.min_score)
    json_path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result.json_files.append(json_path)
    if options.labelimg or options.labelimg_dir:
        _write_xml(path, image, detections, detector, options, result)


def detect_images(detector: Detector, options: DetectOptions) -> DetectResult:
    """Run the detector on every image: per image a drawing of the detections scoring at least min_score
    (<out>/<stem>.png), their JSON (<out>/<stem>.json) and, with labelimg, a LabelImg XML beside the image
    (or in labelimg_dir) unless one exists there (listed as skipped; replaced with overwrite). An image that
    cannot be read is listed in result.failed with why, and the others are processed."""
    if not 0.0 <= options.min_score <= 1.0:
        raise TfodkitError(f"--min-score {options.min_score}: must be between 0 and 1")
    files = image_files(options.images)
    _check_outputs(files, options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    if options.labelimg_dir:
        options.labelimg_dir.mkdir(parents=True, exist_ok=True)
    result = DetectResult()
    for path in tqdm(files, unit="image", disable=not options.progress):
        try:
            _process(path, detector, options, result)
        except InputFileError as error:
            result.failed.append((path, error.detail))
    return result
