"""Source images: header, format, size, sha256, EXIF orientation, and the bytes stored in a record."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from tfodkit.dataset.crc32c import crc32c
from tfodkit.errors import InputFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_STORED_AS_IS = {"JPEG": "jpeg", "PNG": "png"}
_JPEG_VARIANTS = {"MPO": "JPEG"}  # phone cameras' multi-picture JPEGs: a plain JPEG first image, read as such
_EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 95
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {"1", "L", "LA", "RGB", "RGBA", "I;16"}


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the converter needs to know about one source image before encoding it."""

    sha256: str
    file_format: str  # Pillow's name: JPEG, PNG, BMP, GIF, TIFF, WEBP
    mode: str
    width: int  # of the stored pixels (before any EXIF rotation)
    height: int
    orientation: int  # EXIF orientation tag, 1 when absent
    num_bytes: int
    crc32c: int  # of the file's bytes: a cheap check that the file did not change between checking and writing

    @property
    def reencode(self) -> str | None:
        """Why the stored bytes cannot go into the record as they are, or None."""
        if self.file_format not in _STORED_AS_IS:
            return f"{self.file_format} is re-encoded to PNG (lossless)"
        if self.file_format == "JPEG" and self.mode not in ("L", "RGB"):
            return f"{self.mode} JPEG is re-encoded to RGB JPEG (quality {_JPEG_QUALITY})"
        return None


@dataclasses.dataclass(frozen=True)
class RecordImage:
    """Bytes as they go into a record, with their format and pixel size."""

    encoded: bytes
    image_format: str  # "jpeg" or "png"
    width: int
    height: int
    sha256: str


def _jpeg_is_complete(image: Image.Image, data: bytes) -> bool:
    # Entropy-coded data stuffs every 0xFF with 0x00, so an end-of-image marker after the first scan
    # exists exactly when the file was not cut off (searched from the end, where it normally is).
    scan_offset = image.tile[0][2] if image.tile else 0
    return data.rfind(b"\xff\xd9", scan_offset) != -1


def _png_problem(data: bytes) -> str | None:
    """Walk the PNG chunks, checking each CRC, up to IEND."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 12 + length
        if end > len(data):
            return "truncated (a chunk runs past the end of the file)"
        kind = data[offset + 4:offset + 8]
        (stored_crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[offset + 4:end - 4]) != stored_crc:
            return f"corrupt ({kind.decode('latin-1')} chunk CRC mismatch)"
        if kind == b"IEND":
            return None
        offset = end
    return "truncated (no IEND chunk)"


def _open(data: bytes, path: Path) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputFileError(path, "not a readable image (unknown or damaged format)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputFileError(path, f"unreadable image: {error}") from None


def read_bytes(path: Path) -> bytes:
    """The file's bytes; unreadable files raise InputFileError."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputFileError(path, f"cannot read image: {error.strerror}") from None


def inspect_image(data: bytes, path: Path) -> ImageInfo:
    """Identify and check an image. JPEG and PNG are checked structurally (complete scan, chunk CRCs),
    without decoding pixels; formats that will be re-encoded are decoded fully."""
    image = _open(data, path)
    file_format = _JPEG_VARIANTS.get(image.format or "", image.format or "unknown")
    if file_format == "JPEG" and not _jpeg_is_complete(image, data):
        raise InputFileError(path, "truncated JPEG (no end-of-image marker after the image data)")
    if file_format == "PNG":
        problem = _png_problem(data)
        if problem:
            raise InputFileError(path, f"{problem} PNG")
    if file_format not in _STORED_AS_IS:
        try:
            image.load()
        except (OSError, ValueError, SyntaxError) as error:
            raise InputFileError(path, f"unreadable {file_format} image: {error}") from None
    try:
        orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, SyntaxError, struct.error):
        orientation = 1  # unparseable EXIF block: pixels are read as stored, like TensorFlow does
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        file_format=file_format,
        mode=image.mode,
        width=image.width,
        height=image.height,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        num_bytes=len(data),
        crc32c=crc32c(data),
    )


def transposed_size(info: ImageInfo) -> tuple[int, int]:
    """(width, height) after applying the EXIF orientation."""
    return (info.height, info.width) if info.orientation in (5, 6, 7, 8) else (info.width, info.height)


def _encode(image: Image.Image, as_jpeg: bool) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if as_jpeg:
        image.convert("RGB" if image.mode != "L" else "L").save(buffer, format="JPEG", quality=_JPEG_QUALITY)
        return buffer.getvalue(), "jpeg"
    if image.mode not in _PNG_MODES:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def stored_as_is(info: ImageInfo, exif_transpose: bool) -> bool:
    """Whether the source bytes go into the record unchanged (no re-encoding, no rotation)."""
    return info.reencode is None and not (exif_transpose and info.orientation != 1)


def record_image(data: bytes, info: ImageInfo, path: Path, exif_transpose: bool) -> RecordImage:
    """The bytes to store: JPEG and PNG as they are; other formats, CMYK JPEGs and (with `exif_transpose`)
    rotated images re-encoded (PNG lossless, JPEG at quality 95)."""
    rotate = exif_transpose and info.orientation != 1
    if stored_as_is(info, exif_transpose):
        return RecordImage(data, _STORED_AS_IS[info.file_format], info.width, info.height, info.sha256)
    image = _open(data, path)
    try:
        image.load()
        if rotate:
            image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise InputFileError(path, f"unreadable {info.file_format} image: {error}") from None
    encoded, image_format = _encode(image, as_jpeg=info.file_format == "JPEG")
    return RecordImage(encoded, image_format, image.width, image.height, hashlib.sha256(encoded).hexdigest())
