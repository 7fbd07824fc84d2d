"""Imports tfodkit before any test module imports TensorFlow, so tests run with the settings users get; shared fixtures."""

from pathlib import Path

import pytest

import tfodkit  # noqa: F401
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert

NUM_IMAGES = 16  # of the tiny demo set: 8 train, 8 eval


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline.config over a converted 16-image demo set (8 train, 8 val)."""
    root = tmp_path_factory.mktemp("trainer")
    demo_data.write_dataset(root / "demo", num_images=NUM_IMAGES, seed=3)
    convert(ConvertOptions(images=root / "demo", annotations=root / "demo", out=root / "records",
                           split={"train": 0.5, "val": 0.5}, seed=0, workers=1))
    path = root / "pipeline.config"
    path.write_text(template_text("ssd_mobilenet_v2_320x320").replace("PATH_TO_BE_CONFIGURED", str(root / "records")))
    return path
