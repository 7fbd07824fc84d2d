"""TensorBoard event files under MODEL_DIR/train and MODEL_DIR/eval, with the OD API's tag names."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfodkit.evaluation.coco_metrics import PER_CLASS_AP_50_PREFIX, SUMMARY_METRICS
from tfodkit.evaluation.images import groundtruth_image
from tfodkit.evaluation.loss_gap import LOSS_GAPS, LOSS_TAGS, MAP_GAP

TRAIN_DIR = "train"
EVAL_DIR = "eval"
LEARNING_RATE = "learning_rate"
STEPS_PER_SEC = "steps_per_sec"
TRAIN_IMAGES = "train_input_images"
# tfodkit's own tags (the OD API has no --skip-bad-records): the records left out, counted and listed.
SKIPPED_RECORDS_COUNT = "input/num_skipped_records"
SKIPPED_RECORDS = "input/skipped_records"
# tfodkit's own tags for `train --early-stop-patience`: where and why the run stopped early.
EARLY_STOP_STEP = "EarlyStopping/stopped_at_step"
EARLY_STOP_REASON = "EarlyStopping/reason"
# How many training inputs the image summary keeps (the OD API's max_outputs for train_input_images).
NUM_TRAIN_IMAGES = 3


def eval_image_tag(index: int) -> str:
    """Tag of the index-th eval side-by-side image: the OD API's eval_side_by_side_<batch>_<image>
    name at its default eval batch_size of 1."""
    return f"eval_side_by_side_{index}_0"


def _require(tags: Sequence[str], values: Mapping[str, float], what: str) -> None:
    missing = [tag for tag in tags if tag not in values]
    if missing:
        raise ValueError(f"{what} lacks {missing}")


def _refuse_unknown(tags: Sequence[str]) -> None:
    if tags:
        raise ValueError(f"not evaluation tags: {list(tags)}")


def _require_exactly(tags: Sequence[str], values: Mapping[str, float], what: str) -> None:
    if set(values) != set(tags):
        raise ValueError(f"{what} must have exactly the keys {list(tags)}, got {sorted(values)}")


class Summaries:
    """The two summary writers of a training run (one per TensorBoard run: train and eval)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.train_dir = Path(model_dir) / TRAIN_DIR
        self.eval_dir = Path(model_dir) / EVAL_DIR
        self._writers: dict[Path, tf.summary.SummaryWriter] = {}

    def _writer(self, directory: Path) -> tf.summary.SummaryWriter:
        """The run's writer, created at its first summary (so an evaluation alone writes no train/ run)."""
        if directory not in self._writers:
            self._writers[directory] = tf.summary.create_file_writer(str(directory))
        return self._writers[directory]

    def write_train_step(
        self, step: int, losses: Mapping[str, float], learning_rate: float, steps_per_sec: float
    ) -> None:
        """train/: the training batch's Loss/* tags, learning_rate and steps_per_sec at this step."""
        _require_exactly(LOSS_TAGS, losses, "the training losses")
        with self._writer(self.train_dir).as_default(step=step):
            for tag in LOSS_TAGS:
                tf.summary.scalar(tag, float(losses[tag]))
            tf.summary.scalar(LEARNING_RATE, float(learning_rate))
            tf.summary.scalar(STEPS_PER_SEC, float(steps_per_sec))

    def write_train_images(
        self,
        step: int,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray],
        classes: Sequence[np.ndarray],
        names: Mapping[int, str],
    ) -> None:
        """train/train_input_images: the first NUM_TRAIN_IMAGES inputs of a batch (same size, pixels in
        [0, 255], after augmentation and resizing) with their unpadded boxes and 1-based classes drawn."""
        drawn = [groundtruth_image(image, image_boxes, image_classes, names)
                 for image, image_boxes, image_classes in list(zip(images, boxes, classes))[:NUM_TRAIN_IMAGES]]
        if not drawn:
            raise ValueError("no training images to write")
        with self._writer(self.train_dir).as_default(step=step):
            tf.summary.image(TRAIN_IMAGES, np.stack(drawn), max_outputs=NUM_TRAIN_IMAGES)

    def write_metrics(self, step: int, coco_metrics: Mapping[str, float]) -> None:
        """eval/: the COCO metrics (summary and per class) alone, as an exported model's evaluation has them."""
        _require(SUMMARY_METRICS, coco_metrics, "the COCO metrics")
        _refuse_unknown([tag for tag in coco_metrics
                         if tag not in SUMMARY_METRICS and not tag.startswith(PER_CLASS_AP_50_PREFIX)])
        with self._writer(self.eval_dir).as_default(step=step):
            for tag, value in coco_metrics.items():
                tf.summary.scalar(tag, float(value))

    def write_evaluation(
        self,
        step: int,
        coco_metrics: Mapping[str, float],
        losses: Mapping[str, float],
        gaps: Mapping[str, float],
    ) -> None:
        """eval/: the COCO metrics (write_metrics), the eval set's mean Loss/* and the Gap/* tags."""
        _require_exactly(LOSS_TAGS, losses, "the eval losses")
        _require(LOSS_GAPS, gaps, "the gaps")
        _refuse_unknown([tag for tag in gaps if tag not in LOSS_GAPS and tag != MAP_GAP])
        self.write_metrics(step, coco_metrics)
        with self._writer(self.eval_dir).as_default(step=step):
            for values in (losses, gaps):
                for tag, value in values.items():
                    tf.summary.scalar(tag, float(value))

    def write_eval_images(self, step: int, images: Sequence[np.ndarray]) -> None:
        """eval/eval_side_by_side_<k>_0: one image summary per side-by-side picture."""
        with self._writer(self.eval_dir).as_default(step=step):
            for index, image in enumerate(images):
                tf.summary.image(eval_image_tag(index), np.asarray(image, dtype=np.uint8)[np.newaxis])

    def write_skipped_records(self, step: int, records: Sequence[str]) -> None:
        """train/: the records --skip-bad-records left out, as a count and a text listing (one line each)."""
        with self._writer(self.train_dir).as_default(step=step):
            tf.summary.scalar(SKIPPED_RECORDS_COUNT, float(len(records)))
            tf.summary.text(SKIPPED_RECORDS, "\n\n".join(records) or "none")

    def write_early_stopping(self, step: int, reason: str) -> None:
        """train/: EarlyStopping/stopped_at_step (scalar) and EarlyStopping/reason (text), at the stopping step."""
        with self._writer(self.train_dir).as_default(step=step):
            tf.summary.scalar(EARLY_STOP_STEP, float(step))
            tf.summary.text(EARLY_STOP_REASON, reason)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
