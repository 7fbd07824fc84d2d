"""A user's text file that is missing or not text: one clear error naming the file and its kind, from every reader."""

from pathlib import Path

import pytest

from tfodkit import label_map
from tfodkit.config.loader import load_pipeline
from tfodkit.dataset.split import read_split_list
from tfodkit.errors import TfodkitError
from tfodkit.experiments.sweep_file import load_sweep_file

READERS = {
    "pipeline config": load_pipeline,
    "label map": label_map.load,
    "split list": read_split_list,
    "sweep file": load_sweep_file,
}


@pytest.mark.parametrize("kind", READERS)
def test_a_missing_file_is_named_with_its_kind(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "absent.txt"
    with pytest.raises(TfodkitError, match=f"^{path}: {kind} not found$"):
        READERS[kind](path)


@pytest.mark.parametrize("kind", READERS)
def test_a_binary_file_is_named_with_its_kind(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\xff\xfe")
    with pytest.raises(TfodkitError, match=f"^{path}: cannot read {kind}: 'utf-8' codec can't decode"):
        READERS[kind](path)
