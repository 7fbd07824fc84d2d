"""TFRecord shards written atomically: staged beside the output, moved in place only when all succeeded."""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Sequence

from tfodkit.dataset.crc32c import crc32c, masked_crc32c

SHARD_BYTES = 100 * 1024 * 1024  # default shard size target, as the OD API docs suggest (~100 MB)
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord$")


def frame_parts(payload: Sequence[bytes]) -> list[bytes]:
    """One TFRecord entry for the concatenated `payload` parts, as parts (no part is copied): length, masked
    CRC-32C of the length, the data, masked CRC-32C of the data."""
    length = struct.pack("<Q", sum(map(len, payload)))
    crc = 0
    for part in payload:
        crc = crc32c(part, crc)
    return [length + struct.pack("<I", masked_crc32c(crc32c(length))), *payload, struct.pack("<I", masked_crc32c(crc))]


def frame_record(data: bytes) -> bytes:
    """One TFRecord entry for `data`, as bytes."""
    return b"".join(frame_parts([data]))


def shard_name(split: str, index: int, count: int) -> str:
    """`train-00000-of-00004.tfrecord`."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_count(total_bytes: int, num_records: int, shards: int | None) -> int:
    """`shards` when given, else one shard per ~100 MB; never more shards than records, at least one."""
    wanted = shards if shards is not None else -(-total_bytes // SHARD_BYTES)
    return max(1, min(wanted, num_records))


class ShardWriter:
    """Round-robin writer over the shards of one split: record i goes to shard i mod count."""

    def __init__(self, directory: Path, split: str, count: int) -> None:
        self.names = [shard_name(split, index, count) for index in range(count)]
        self._files: list[BinaryIO] = [open(directory / name, "wb") for name in self.names]
        self._next = 0
        self.records = 0
        self.bytes = 0

    def write(self, framed: Sequence[bytes]) -> None:
        """Append one record, given as the parts of its framing (see frame_parts)."""
        self._files[self._next].writelines(framed)
        self._next = (self._next + 1) % len(self._files)
        self.records += 1
        self.bytes += sum(map(len, framed))

    def close(self) -> None:
        for file in self._files:
            file.close()


class StagedOutput:
    """Files staged in a hidden folder inside `out`; `commit()` replaces earlier outputs of ours with them.
    Leaving the `with` block without commit (an error) removes every staged file."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._staging: Path | None = None
        self._writers: list[ShardWriter] = []

    def __enter__(self) -> StagedOutput:
        self.out.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(prefix=".tfodkit-staging-", dir=self.out))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for writer in self._writers:
            writer.close()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    @property
    def staging(self) -> Path:
        assert self._staging is not None, "use StagedOutput in a with block"
        return self._staging

    def shard_writer(self, split: str, count: int) -> ShardWriter:
        writer = ShardWriter(self.staging, split, count)
        self._writers.append(writer)
        return writer

    def write_text(self, name: str, text: str) -> None:
        (self.staging / name).write_text(text, encoding="utf-8")

    def commit(self) -> list[Path]:
        """Close the shards, delete shards of an earlier run in `out`, move the staged files in place
        (the manifest last, so a manifest always describes complete outputs)."""
        for writer in self._writers:
            writer.close()
        for old in self.out.iterdir():
            if old.is_file() and _SHARD_NAME.match(old.name):
                old.unlink()
        staged = sorted(self.staging.iterdir(), key=lambda path: (path.name == "manifest.json", path.name))
        moved = []
        for path in staged:
            target = self.out / path.name
            path.replace(target)
            moved.append(target)
        return moved
