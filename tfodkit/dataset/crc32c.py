"""CRC-32C (Castagnoli), the checksum of the TFRecord framing, from the native `google-crc32c` library."""

from __future__ import annotations

import warnings

import google_crc32c

if google_crc32c.implementation != "c":  # built without its C extension: a pure-Python fallback, ~1000x slower
    warnings.warn("google-crc32c has no C extension on this platform: writing TFRecords will be very slow "
                  "(reinstall google-crc32c from a binary wheel)", RuntimeWarning, stacklevel=2)


def crc32c(data: bytes, previous: int = 0) -> int:
    """CRC-32C of `data` (initial value and final xor 0xFFFFFFFF, as in TFRecord and iSCSI); `previous` is the
    CRC-32C of bytes that come before `data`, so crc32c(b, crc32c(a)) == crc32c(a + b)."""
    return google_crc32c.extend(previous, data)


def masked_crc32c(crc: int) -> int:
    """The TFRecord checksum of bytes whose CRC-32C is `crc`: rotated right by 15 bits plus 0xA282EAD8."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
