"""Imports tfodkit before any test module imports TensorFlow, so tests run with the settings users get; shared fixtures."""

from pathlib import Path

import pytest

import tfodkit  # noqa: F401
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert

NUM_IMAGES = 16  # of the tiny demo set: 8 train, 8 eval


def demo_records(root: Path, num_images: int, seed: int, split: dict[str, float]) -> Path:
    """A demo dataset written under root/demo and converted into TFRecords in root/records (returned)."""
    demo_data.write_dataset(root / "demo", num_images=num_images, seed=seed)
    convert(ConvertOptions(images=root / "demo", annotations=root / "demo", out=root / "records",
                           split=split, seed=0, workers=1))
    return root / "records"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline.config over a converted 16-image demo set (8 train, 8 val)."""
    root = tmp_path_factory.mktemp("trainer")
    records = demo_records(root, NUM_IMAGES, seed=3, split={"train": 0.5, "val": 0.5})
    path = root / "pipeline.config"
    path.write_text(template_text("ssd_mobilenet_v2_320x320").replace("PATH_TO_BE_CONFIGURED", str(records)))
    return path
