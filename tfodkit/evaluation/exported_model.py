"""COCO evaluation of an exported model (SavedModel or .tflite) on TFRecords, logged as in-process evaluation logs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.errors import TfodkitError, op_error_text
from tfodkit.evaluation.coco_metrics import CocoDetectionMetrics
from tfodkit.evaluation.images import VisualizationOptions, side_by_side
from tfodkit.evaluation.summaries import Summaries
from tfodkit.export.runtime import Detector
from tfodkit.inputs import record_files
from tfodkit.protos import pipeline_pb2

MANIFEST = "manifest.json"  # what make-tfrecords writes beside the shards, with each split's shard names


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """What one evaluation of an exported model measured, and the step its summaries were logged at."""

    metrics: dict[str, float]  # COCO summary metrics and per-class AP@0.5
    num_images: int
    num_difficult_boxes: int  # difficult ground-truth boxes (evaluated as ordinary ones)
    step: int


def split_records(config: pipeline_pb2.TrainEvalPipelineConfig | None, split: str) -> list[str]:
    """The TFRecords of a split: val = eval_input_reader[0]'s files; test = the test shards of the manifest.json
    that make-tfrecords wrote beside those files."""
    if config is None:
        raise TfodkitError("--model: no pipeline.config beside the model to find the eval records in; give "
                           "--pipeline_config_path or --records")
    if not config.eval_input_reader:
        raise TfodkitError("eval_input_reader: the config has no evaluation reader; give --records")
    files = record_files(config.eval_input_reader[0], "eval_input_reader[0]")
    if split == "val":
        return list(files)
    folders = sorted({Path(file).parent for file in files})
    manifests = [folder / MANIFEST for folder in folders if (folder / MANIFEST).is_file()]
    if len(manifests) != 1:
        raise TfodkitError(f"--split test: no single {MANIFEST} of make-tfrecords beside the eval records "
                           f"({', '.join(str(folder) for folder in folders)}); give the test records with --records")
    try:
        shards = json.loads(manifests[0].read_text(encoding="utf-8"))["splits"]["test"]["shards"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TfodkitError(f"{manifests[0]}: no test split listed ({error!r}); give the test records with "
                           "--records") from None
    if not shards:
        raise TfodkitError(f"{manifests[0]}: the test split has no shards (no test images); give --records")
    return [str(manifests[0].parent / name) for name in shards]


def eval_max_boxes(config: pipeline_pb2.TrainEvalPipelineConfig | None) -> int | None:
    """The ground-truth boxes per image the eval input pipeline keeps (None: no config, or no eval reader)."""
    return config.eval_input_reader[0].max_number_of_boxes if config and config.eval_input_reader else None


def detect_records(
    detector: Detector, files: list[str], max_boxes: int | None, visualization: VisualizationOptions
) -> tuple[CocoDetectionMetrics, list[np.ndarray]]:
    """The detector on every record, image fed at its original size, ground truth as the eval input pipeline
    gives it (its first max_boxes boxes, when given): the metrics fed, and the first side-by-side pictures."""
    metrics, drawn = CocoDetectionMetrics(detector.label_map), []
    try:
        for decoded in tf.data.TFRecordDataset(files).map(ExampleDecoder(detector.label_map)):
            example = {key: value.numpy() for key, value in decoded.items()}
            image = example["image"]
            (found,) = detector.detect([image])
            count = len(example["boxes"][:max_boxes])
            labels = {
                "source_id": np.array([example["source_id"]]),
                "original_image_spatial_shape": np.array([image.shape[:2]]),
                "boxes": example["boxes"][np.newaxis, :count],
                "classes": example["classes"][np.newaxis, :count],
                "difficult": example["difficult"][np.newaxis, :count],
                "num_boxes": np.array([count]),
            }
            detections = {
                "detection_boxes": found["boxes"][np.newaxis],
                "detection_scores": found["scores"][np.newaxis],
                "detection_classes": found["classes"][np.newaxis],
                "num_detections": np.array([len(found["scores"])]),
            }
            metrics.add_batch(labels, detections)
            if len(drawn) < visualization.num_visualizations:
                drawn.append(side_by_side(image, {key: value[0] for key, value in detections.items()},
                                          labels["boxes"][0], labels["classes"][0], detector.names, visualization))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        raise TfodkitError(f"{', '.join(files)}: cannot read the records: {op_error_text(error)}") from None
    return metrics, drawn


def evaluate_model(
    detector: Detector,
    files: list[str],
    model_dir: str | Path,
    config: pipeline_pb2.TrainEvalPipelineConfig | None = None,
) -> ModelEvaluation:
    """COCO metrics of the detector on the records, written with the side-by-side pictures under
    model_dir/eval at the detector's step, with in-process evaluation's tags (no Loss/* or Gap/*: an exported
    model has no losses). The config, when given, sets the ground truth's max_number_of_boxes and the pictures'
    eval_config options."""
    max_boxes = eval_max_boxes(config)
    visualization = VisualizationOptions.from_eval_config(config.eval_config) if config else VisualizationOptions()
    metrics, drawn = detect_records(detector, files, max_boxes, visualization)
    values = metrics.compute()
    summaries = Summaries(model_dir)
    try:
        summaries.write_metrics(detector.step, values)
        summaries.write_eval_images(detector.step, drawn)
    finally:
        summaries.close()
    return ModelEvaluation(metrics=values, num_images=metrics.num_images,
                           num_difficult_boxes=metrics.num_difficult_boxes, step=detector.step)
