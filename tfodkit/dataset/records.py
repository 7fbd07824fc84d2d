"""Per-file work done in pool workers: read and check sources, and build one framed TFRecord entry per image."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from tfodkit.dataset import images
from tfodkit.dataset.labelimg_xml import Annotation, read_annotation
from tfodkit.dataset.shards import frame_record
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, encode_example
from tfodkit.errors import InputFileError


@dataclasses.dataclass(frozen=True)
class Probe:
    """A parsed XML or a checked image, or the error that prevented it."""

    annotation: Annotation | None = None
    info: images.ImageInfo | None = None
    error: str | None = None  # without the file name
    line: int | None = None


def probe_xml(path: Path) -> Probe:
    try:
        return Probe(annotation=read_annotation(path))
    except InputFileError as error:
        return Probe(error=error.detail, line=error.line)


def probe_image(path: Path) -> Probe:
    try:
        return Probe(info=images.inspect_image(images.read_bytes(path), path))
    except InputFileError as error:
        return Probe(error=error.detail, line=error.line)


@dataclasses.dataclass(frozen=True)
class RecordTask:
    """Everything needed to build one record; boxes are already normalised to the stored image."""

    path: Path
    info: images.ImageInfo
    filename: str
    source_id: str
    objects: tuple[ObjectBox, ...]
    exif_transpose: bool


def build_record(task: RecordTask) -> bytes:
    """Read the image again (it must not have changed since it was checked) and frame its Example."""
    data = images.read_bytes(task.path)
    if hashlib.sha256(data).hexdigest() != task.info.sha256:
        raise InputFileError(task.path, "the file changed during the conversion; run it again")
    stored = images.record_image(data, task.info, task.path, task.exif_transpose)
    encoded = EncodedImage(
        encoded=stored.encoded,
        image_format=stored.image_format,
        height=stored.height,
        width=stored.width,
        filename=task.filename,
        source_id=task.source_id,
        sha256=stored.sha256,
    )
    return frame_record(encode_example(encoded, task.objects))
