"""CRC-32C (Castagnoli), the checksum of the TFRecord framing, vectorised with NumPy (no TensorFlow import)."""

from __future__ import annotations

import threading

import numpy as np

_POLYNOMIAL = 0x82F63B78  # reflected Castagnoli polynomial
_BLOCK = 1024  # bytes hashed side by side; 1024 x 256 x 4 bytes of tables stay in L2 cache
_SLAB = 32  # blocks looked up per step: keeps the temporaries (256 KB of indices) in cache beside the tables
_SHORT = 64  # below this a byte loop is faster than the vectorised path (and it needs >= 4 bytes)


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLYNOMIAL), table >> 1).astype(np.uint32)
    return table


def _shift_zero_byte(register: np.ndarray) -> np.ndarray:
    return _BYTE_TABLE[register & 0xFF] ^ (register >> 8)


_BYTE_TABLE = _byte_table()


def _position_table() -> np.ndarray:
    """Row p, column v: the register (initial value 0) after byte v at offset p of a _BLOCK-byte block."""
    rows = np.empty((_BLOCK, 256), np.uint32)
    register = _BYTE_TABLE.copy()
    for zeros_after in range(_BLOCK):
        rows[_BLOCK - 1 - zeros_after] = register
        register = _shift_zero_byte(register)
    return rows.reshape(-1)


_POSITIONS = _position_table()
_OFFSETS = np.arange(_BLOCK, dtype=np.intp) * 256
# A register r followed by a block of zeros equals a zero register over a block starting with r's 4 bytes,
# so the first 4 rows of the position table map each register byte to its effect one block later.
_SHIFT = [_POSITIONS[256 * i:256 * (i + 1)].tolist() for i in range(4)]
_BYTE_LIST = _BYTE_TABLE.tolist()


_SCRATCH = threading.local()


def _scratch() -> tuple[np.ndarray, np.ndarray]:
    """Per-thread index and lookup buffers, reused by every call: fresh ones cost ~100 page faults per call."""
    if not hasattr(_SCRATCH, "buffers"):
        _SCRATCH.buffers = (np.empty((_SLAB, _BLOCK), np.intp), np.empty((_SLAB, _BLOCK), np.uint32))
    return _SCRATCH.buffers


def _extend(register: int, blocks: np.ndarray) -> int:
    """Register after `register` (initial value 0 semantics) followed by whole blocks of bytes."""
    shift0, shift1, shift2, shift3 = _SHIFT
    indices, gathered = _scratch()
    for start in range(0, len(blocks), _SLAB):
        slab = blocks[start:start + _SLAB]
        count = len(slab)
        np.add(slab, _OFFSETS, out=indices[:count])
        np.take(_POSITIONS, indices[:count], out=gathered[:count], mode="clip")
        for block_crc in np.bitwise_xor.reduce(gathered[:count], axis=1).tolist():
            register = (shift0[register & 0xFF] ^ shift1[(register >> 8) & 0xFF]
                        ^ shift2[(register >> 16) & 0xFF] ^ shift3[register >> 24] ^ block_crc)
    return register


def crc32c(data: bytes) -> int:
    """CRC-32C of `data` (initial value and final xor 0xFFFFFFFF, as in TFRecord and iSCSI)."""
    if len(data) < _SHORT:
        register = 0xFFFFFFFF
        for byte in data:
            register = _BYTE_LIST[(register ^ byte) & 0xFF] ^ (register >> 8)
        return register ^ 0xFFFFFFFF
    # The initial value 0xFFFFFFFF of a reflected CRC equals xoring 0xFF into the first four message bytes,
    # and leading zeros leave a zero register unchanged: so a short prefix (at least 4 bytes) is copied, padded
    # in front to whole blocks and adjusted, and the rest, whole blocks, is read in place.
    view = np.frombuffer(data, np.uint8)
    prefix = len(data) % _BLOCK
    if prefix < 4:
        prefix += _BLOCK
    head = np.zeros(-(-prefix // _BLOCK) * _BLOCK, np.uint8)
    head[len(head) - prefix:] = view[:prefix]
    head[len(head) - prefix:len(head) - prefix + 4] ^= 0xFF
    register = _extend(0, head.reshape(-1, _BLOCK))
    return _extend(register, view[prefix:].reshape(-1, _BLOCK)) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus 0xA282EAD8, modulo 2**32."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
