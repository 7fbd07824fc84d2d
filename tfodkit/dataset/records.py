"""Per-file work: read and check sources (in pool workers), and build one framed TFRecord entry per image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfodkit.dataset import images
from tfodkit.dataset.labelimg_xml import Annotation, read_annotation
from tfodkit.dataset.crc32c import crc32c
from tfodkit.dataset.shards import frame_parts
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, example_parts
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

    @property
    def reencodes(self) -> bool:
        """Whether building the record decodes and re-encodes the image (worth a pool worker)."""
        return not images.stored_as_is(self.info, self.exif_transpose)


def build_record(task: RecordTask) -> list[bytes]:
    """Read the image again (it must not have changed since it was checked) and frame its Example; the
    result is the record's parts (see shards.frame_parts), the image bytes among them uncopied."""
    data = images.read_bytes(task.path)
    if len(data) != task.info.num_bytes or crc32c(data) != task.info.crc32c:
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
    return frame_parts(example_parts(encoded, task.objects))
