"""Check TFRecord files record by record: framing checksums, then each example's image, boxes and classes."""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import tensorflow as tf

from tfodkit.dataset import tf_example as keys
from tfodkit.dataset.crc32c import crc32c, masked_crc32c
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.dataset.record_reader import DecodedRecord
from tfodkit.errors import op_error_text
from tfodkit.label_map import LabelMap

HEADER_BYTES = 12  # uint64 length + uint32 masked CRC-32C of the length
FOOTER_BYTES = 4  # uint32 masked CRC-32C of the data


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """One record that cannot be trained on, and why."""

    path: str
    index: int  # position in its file, from 0
    offset: int  # byte offset of the record's header
    reason: str

    def line(self) -> str:
        return f"{self.path} record #{self.index} (byte {self.offset}): {self.reason}"


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What checking one file found: its readable records and its bad ones.

    TensorFlow's TFRecord reader stops at the first framing error (a truncated record or a checksum mismatch),
    so `readable` counts the records before it: a reader limited to that many records reads the file safely.
    """

    path: str
    readable: int
    bad: tuple[BadRecord, ...]
    framing_error: BadRecord | None  # the first framing error, if any (also in `bad`)


def _framed(path: str, handle: BinaryIO) -> Iterator[tuple[int, int, bytes | None, str | None]]:
    """(index, offset, data, framing error) for each record; the error ends the iteration."""
    size = os.fstat(handle.fileno()).st_size
    index, offset = 0, 0
    while offset < size:
        header = handle.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            yield index, offset, None, f"truncated: the file ends {len(header)} bytes into this record's header"
            return
        (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
        if masked_crc32c(crc32c(header[:8])) != length_crc:
            what = ("not a TFRecord file (its first 12 bytes are no record header)" if index == 0 else
                    "corrupted: the record's length checksum does not match")
            yield index, offset, None, what
            return
        end = offset + HEADER_BYTES + length + FOOTER_BYTES
        if end > size:
            yield index, offset, None, (f"truncated: the record needs {length + FOOTER_BYTES} bytes after its header, "
                                        f"the file has {size - offset - HEADER_BYTES}")
            return
        data = handle.read(length)
        (data_crc,) = struct.unpack("<I", handle.read(FOOTER_BYTES))
        if masked_crc32c(crc32c(data)) != data_crc:
            yield index, offset, None, "corrupted: the record's data checksum does not match"
            return
        yield index, offset, data, None
        index, offset = index + 1, end


def _stops_reader(error: BadRecord, handle: BinaryIO) -> BadRecord:
    """The framing error, saying how much of the file TensorFlow's reader loses from there."""
    lost = os.fstat(handle.fileno()).st_size - error.offset
    return dataclasses.replace(error, reason=f"{error.reason}; TensorFlow's reader stops here, so this record and "
                                             f"the {lost} bytes from it to the end of the file are lost")


def _filename(data: bytes) -> str:
    """The image/filename of a serialized example whose image cannot be decoded."""
    spec = {keys.IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value="(no image/filename)")}
    return tf.io.parse_single_example(data, spec)[keys.IMAGE_FILENAME].numpy().decode("utf-8", "replace")


class RecordChecker:
    """Checks files' framing (fast: CRC only) or, with `decode`, also parses every example, decodes its image
    and checks its boxes and classes as training would read them."""

    def __init__(self, decode: bool = False, label_map: LabelMap | None = None,
                 num_classes: int | None = None) -> None:
        self._decode = decode
        self._num_classes = num_classes
        self._decoder = ExampleDecoder(label_map)  # eager: its errors read as the op's own message

    def _content_problems(self, path: str, index: int, data: bytes) -> list[str]:
        try:
            values = {key: value.numpy() for key, value in self._decoder(tf.constant(data)).items()}
        except tf.errors.InvalidArgumentError as error:
            message = op_error_text(error)
            if "image" in message.lower():
                return [f"image {_filename(data)}: not decodable ({message})"]
            return [f"not a tf.train.Example with the OD API's keys ({message})"]
        record = DecodedRecord(
            path=Path(path), index=index, image=values["image"], boxes=values["boxes"], classes=values["classes"],
            class_text=[text.decode("utf-8", "replace") for text in values["class_text"]],
            filename=values["filename"].decode("utf-8", "replace"),
            source_id=values["source_id"].decode("utf-8", "replace"),
            height=int(values["height"]), width=int(values["width"]),
        )
        problems = [f"image {record.filename}: {problem}" for problem in record.problems()]
        if self._num_classes is not None:
            outside = sorted({int(c) for c in record.classes if c > self._num_classes or c == 0})
            if outside:
                problems.append(f"image {record.filename}: class id(s) {outside} outside 1..{self._num_classes}")
        return problems

    def check_file(self, path: str | Path) -> FileCheck:
        path = str(path)
        bad: list[BadRecord] = []
        framing_error, readable = None, 0
        try:
            with open(path, "rb") as handle:
                for index, offset, data, error in _framed(path, handle):
                    if error is not None:
                        framing_error = _stops_reader(BadRecord(path, index, offset, error), handle)
                        bad.append(framing_error)
                        break
                    readable = index + 1
                    if self._decode:
                        bad.extend(BadRecord(path, index, offset, problem)
                                   for problem in self._content_problems(path, index, data))
        except OSError as error:
            framing_error = BadRecord(path, 0, 0, f"cannot be read: {error.strerror or error}")
            bad.append(framing_error)
        return FileCheck(path=path, readable=readable, bad=tuple(bad), framing_error=framing_error)

    def check_files(self, paths: Iterable[str | Path]) -> list[FileCheck]:
        return [self.check_file(path) for path in paths]


def bad_records(checks: Iterable[FileCheck]) -> list[BadRecord]:
    """Every bad record of the checked files, in file order."""
    return [record for check in checks for record in check.bad]
