"""A tiny SSD that learns 8 demo images within 90 steps: its overrides and the demo records it trains on."""

from __future__ import annotations

from pathlib import Path

from tfodkit.config.loader import parse_pipeline_text, pipeline_text
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert

# Tiny model, no augmentation (see demo_pipeline), a constant Adam rate and fast batch-norm statistics: 90 steps
# on 8 training images memorise them, so their metrics are far from 0 while unseen images stay unseen.
OVERRIDES = (
    "model.ssd.feature_extractor.depth_multiplier=0.35",
    "model.ssd.image_resizer.fixed_shape_resizer.height=96",
    "model.ssd.image_resizer.fixed_shape_resizer.width=96",
    "model.ssd.feature_extractor.conv_hyperparams.batch_norm.decay=0.9",
    "model.ssd.box_predictor.convolutional_box_predictor.conv_hyperparams.batch_norm.decay=0.9",
    "train_config.batch_size=4",
    "train_config.optimizer={ adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.001 } } }"
    " use_moving_average: false }",
)
NUM_STEPS = 90
NUM_IMAGES = 16


def demo_pipeline(root: Path, split: dict[str, float], eval_records: str | None = None) -> Path:
    """root/pipeline.config: the ssd_mobilenet_v2_320x320 template without data augmentation over 16 demo images
    (seed 3, in root/demo) converted into root/records with `split`; its eval reader reads root/records/<eval_records>
    when given (else the template's val records)."""
    demo_data.write_dataset(root / "demo", num_images=NUM_IMAGES, seed=3)
    convert(ConvertOptions(images=root / "demo", annotations=root / "demo", out=root / "records", split=split,
                           seed=0, workers=1))
    config = parse_pipeline_text(template_text("ssd_mobilenet_v2_320x320").replace(
        "PATH_TO_BE_CONFIGURED", str(root / "records")), "template")
    del config.train_config.data_augmentation_options[:]
    if eval_records is not None:
        config.eval_input_reader[0].tf_record_input_reader.input_path[:] = [str(root / "records" / eval_records)]
    path = root / "pipeline.config"
    path.write_text(pipeline_text(config))
    return path
