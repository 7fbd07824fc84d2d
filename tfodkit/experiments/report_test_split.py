"""The recommended checkpoint evaluated once on the test split, after every choice was made on val."""

from __future__ import annotations

from pathlib import Path

from tfodkit.evaluation.exported_model import ModelEvaluation, evaluate_model, split_records
from tfodkit.export.runtime import Detector
from tfodkit.protos import pipeline_pb2

TEST_DIR = "test"  # under REPORT_DIR: the test evaluation's eval/ summaries


def evaluate_test_split(detector: Detector, config: pipeline_pb2.TrainEvalPipelineConfig,
                        report_dir: Path) -> tuple[ModelEvaluation, list[str]]:
    """COCO metrics of the detector on the test shards that make-tfrecords' manifest.json lists beside the eval
    records, their eval/ summaries written under REPORT_DIR/test; and the files evaluated."""
    files = split_records(config, "test")
    return evaluate_model(detector, files, report_dir / TEST_DIR, config), files
