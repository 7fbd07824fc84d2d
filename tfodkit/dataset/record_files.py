"""Find TFRecord files from a file, folder or glob, and read a file's split from its name."""

from __future__ import annotations

import glob
from pathlib import Path

from tfodkit.errors import TfodkitError

RECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")
LABEL_MAP_NAME = "label_map.pbtxt"


def is_record_file(path: Path) -> bool:
    """True for `x.tfrecord`, `x.record` and sharded OD API names such as `train.record-00000-of-00010`."""
    return path.is_file() and any(path.name.endswith(s) or f"{s}-" in path.name for s in RECORD_SUFFIXES)


def find_records(pattern: str | Path) -> list[Path]:
    """Record files named by a file, a folder (its record files) or a glob pattern, sorted."""
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if is_record_file(p))
        if not files:
            raise TfodkitError(f"{path}: no TFRecord files ({', '.join(RECORD_SUFFIXES)}) in this folder")
        return files
    if glob.has_magic(str(pattern)):
        files = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file())
        if not files:
            raise TfodkitError(f"{pattern}: no files match this pattern")
        return files
    raise TfodkitError(f"{path}: no such file or folder")


def split_name(path: Path) -> str:
    """`train-00000-of-00004.tfrecord` and `train.record-00000-of-00010` -> `train`."""
    return path.name.split(".", 1)[0].split("-", 1)[0] or path.name


def label_map_beside(files: list[Path]) -> Path | None:
    """The `label_map.pbtxt` that make-tfrecords writes next to the shards, when there is exactly one."""
    candidates = {f.parent / LABEL_MAP_NAME for f in files}
    found = [c for c in candidates if c.is_file()]
    return found[0] if len(found) == 1 else None
