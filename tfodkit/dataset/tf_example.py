"""Serialise one image and its boxes as a tf.train.Example with the OD API's feature keys (no TF, no protobuf)."""

from __future__ import annotations

import dataclasses
import struct
from typing import Sequence

# Feature keys read by the OD API's TfExampleDecoder (and by Model Garden / MediaPipe readers).
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_FILENAME = "image/filename"
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_SHA256 = "image/key/sha256"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_YMAX = "image/object/bbox/ymax"
CLASS_TEXT = "image/object/class/text"
CLASS_LABEL = "image/object/class/label"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
VIEW = "image/object/view"


@dataclasses.dataclass(frozen=True)
class ObjectBox:
    """One object: class and box normalised by the real image size (0..1)."""

    name: str
    label: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False
    view: str = "Unspecified"


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """Image bytes as stored in the record and what identifies them."""

    encoded: bytes
    image_format: str  # "jpeg" or "png", matching the bytes
    height: int
    width: int
    filename: str
    source_id: str  # unique decimal integer string
    sha256: str


# The protobuf wire format of tf.train.Example (example.proto, feature.proto), written directly so that the
# image bytes are never copied: Example.features = 1; Features.feature = 1 (a map: entries of key = 1, value = 2);
# Feature is one of bytes_list = 1, float_list = 2, int64_list = 3, each holding `repeated value = 1` (numbers
# packed). Map entries come in key order, as protobuf's deterministic serialisation writes them.
_LENGTH_DELIMITED_1 = b"\x0a"  # field 1, wire type 2
_LENGTH_DELIMITED_2 = b"\x12"  # field 2
_LENGTH_DELIMITED_3 = b"\x1a"  # field 3


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 values take ten bytes, as in protobuf
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _bytes_list(values: Sequence[bytes]) -> bytes:
    return _field(_LENGTH_DELIMITED_1, b"".join(_field(_LENGTH_DELIMITED_1, value) for value in values))


def _float_list(values: Sequence[float]) -> bytes:
    packed = struct.pack(f"<{len(values)}f", *values)
    return _field(_LENGTH_DELIMITED_2, _field(_LENGTH_DELIMITED_1, packed) if values else b"")


def _int64_list(values: Sequence[int]) -> bytes:
    packed = b"".join(map(_varint, values))
    return _field(_LENGTH_DELIMITED_3, _field(_LENGTH_DELIMITED_1, packed) if values else b"")


def _entry(key: bytes, feature: bytes) -> bytes:
    return _field(_LENGTH_DELIMITED_1, key + _field(_LENGTH_DELIMITED_2, feature))


_TAIL_KEYS = sorted([IMAGE_FORMAT, IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_FILENAME, IMAGE_SOURCE_ID, IMAGE_SHA256, BBOX_XMIN,
                     BBOX_XMAX, BBOX_YMIN, BBOX_YMAX, CLASS_TEXT, CLASS_LABEL, DIFFICULT, TRUNCATED, VIEW])
assert _TAIL_KEYS[0] > IMAGE_ENCODED  # the image's entry comes first
_KEY_FIELDS = {key: _field(_LENGTH_DELIMITED_1, key.encode()) for key in [IMAGE_ENCODED, *_TAIL_KEYS]}


def _text(values: Sequence[str]) -> list[bytes]:
    return [value.encode("utf-8") for value in values]


def example_parts(image: EncodedImage, objects: Sequence[ObjectBox]) -> tuple[bytes, bytes, bytes]:
    """The serialised tf.train.Example for one image as (head, image bytes, tail): joined, they are the record.
    `image/encoded` sorts first among the keys, so the image bytes sit between a short head and the rest."""
    others = {
        IMAGE_FORMAT: _bytes_list(_text([image.image_format])),
        IMAGE_HEIGHT: _int64_list([image.height]),
        IMAGE_WIDTH: _int64_list([image.width]),
        IMAGE_FILENAME: _bytes_list(_text([image.filename])),
        IMAGE_SOURCE_ID: _bytes_list(_text([image.source_id])),
        IMAGE_SHA256: _bytes_list(_text([image.sha256])),
        BBOX_XMIN: _float_list([box.xmin for box in objects]),
        BBOX_XMAX: _float_list([box.xmax for box in objects]),
        BBOX_YMIN: _float_list([box.ymin for box in objects]),
        BBOX_YMAX: _float_list([box.ymax for box in objects]),
        CLASS_TEXT: _bytes_list(_text([box.name for box in objects])),
        CLASS_LABEL: _int64_list([box.label for box in objects]),
        DIFFICULT: _int64_list([int(box.difficult) for box in objects]),
        TRUNCATED: _int64_list([int(box.truncated) for box in objects]),
        VIEW: _bytes_list(_text([box.view for box in objects])),
    }
    tail = b"".join([_entry(_KEY_FIELDS[key], others[key]) for key in _TAIL_KEYS])
    data = image.encoded
    value_list = _LENGTH_DELIMITED_1 + _varint(len(data))  # BytesList.value[0], then the bytes
    feature = _LENGTH_DELIMITED_1 + _varint(len(value_list) + len(data)) + value_list  # Feature.bytes_list
    entry = _KEY_FIELDS[IMAGE_ENCODED] + _LENGTH_DELIMITED_2 + _varint(len(feature) + len(data)) + feature  # key, value
    entry = _LENGTH_DELIMITED_1 + _varint(len(entry) + len(data)) + entry  # one Features.feature map entry
    features_size = len(entry) + len(data) + len(tail)
    head = _LENGTH_DELIMITED_1 + _varint(features_size) + entry  # Example.features
    return head, data, tail


def encode_example(image: EncodedImage, objects: Sequence[ObjectBox]) -> bytes:
    """Serialised tf.train.Example for one image."""
    return b"".join(example_parts(image, objects))
