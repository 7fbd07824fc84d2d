"""A dataset's ground-truth boxes as training sees them: read by the config's input pipeline, after its resizer."""

from __future__ import annotations

import copy
import dataclasses
import glob
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfodkit import inputs
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_pb2
from tfodkit.training import input_errors

READ_BATCH = 64  # images per batch read


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Boxes per image, padded: boxes [I, M, 4] normalised ymin, xmin, ymax, xmax; classes [I, M] label map ids;
    weights [I, M] (1 a box, 0 padding). M is the most boxes any image keeps (max_number_of_boxes applied)."""

    source: str  # what was read, for messages
    boxes: np.ndarray
    classes: np.ndarray
    weights: np.ndarray
    image_size: tuple[int, int]  # (height, width) after the config's resizer
    class_names: dict[int, str]
    boxes_over_limit: int  # boxes dropped by max_number_of_boxes, as training drops them

    @property
    def valid(self) -> np.ndarray:
        """[I, M] bool: which rows are boxes."""
        return self.weights > 0

    @property
    def flat_boxes(self) -> np.ndarray:
        """[K, 4] every box, image after image."""
        return self.boxes[self.valid]

    @property
    def flat_classes(self) -> np.ndarray:
        """[K] every box's class id."""
        return self.classes[self.valid]

    def with_boxes_only(self) -> "GroundTruth":
        """The same ground truth without images that have no boxes (they cannot change any share)."""
        keep = self.valid.any(axis=1)
        return dataclasses.replace(self, boxes=self.boxes[keep], classes=self.classes[keep],
                                   weights=self.weights[keep])


def _spec(config: pipeline_pb2.TrainEvalPipelineConfig, records: str | None) -> inputs.InputSpec:
    """The training reader's pipeline without augmentation, shuffling or repetition; `records` replaces its files."""
    if records is not None:
        if not any(Path(path).is_file() for path in glob.glob(str(Path(records).expanduser()))):
            raise TfodkitError(f"--records {records}: no files match")
        config = copy.deepcopy(config)
        reader = config.train_input_reader.tf_record_input_reader
        del reader.input_path[:]
        reader.input_path.append(records)
    spec = inputs.input_spec(config, "train", training=False, batch_size=READ_BATCH)
    return dataclasses.replace(spec, shuffle=False, num_epochs=1)


def read_ground_truth(config: pipeline_pb2.TrainEvalPipelineConfig, records: str | None = None) -> GroundTruth:
    """Every box of the config's training records (or of the `records` glob), as the training input gives them
    to target assignment: decoded by the shared decoder, resized by the config's resizer, without augmentation."""
    spec = _spec(config, records)
    boxes, classes, weights, over_limit = [], [], [], 0
    try:
        for _, labels in inputs.build_dataset(spec):
            boxes.append(labels["boxes"].numpy())
            classes.append(labels["classes"].numpy())
            weights.append(labels["weights"].numpy())
            over_limit += int(tf.reduce_sum(labels["num_boxes_over_limit"]))
    except tf.errors.OpError as error:
        if input_errors.is_input_error(error):
            raise input_errors.locate(error, spec) from None
        raise
    source = ", ".join(spec.record_files)
    if not boxes:
        raise TfodkitError(f"{spec.reader} ({source}): no records to read")
    weights_all = np.concatenate(weights)
    rows = int(weights_all.sum(axis=1).max(initial=0))
    if rows == 0:
        raise TfodkitError(f"{spec.reader} ({source}): no ground-truth boxes in these records")
    names = spec.label_map.names_by_id() if spec.label_map else {}
    return GroundTruth(
        source=source,
        boxes=np.concatenate(boxes)[:, :rows].astype(np.float32),
        classes=np.concatenate(classes)[:, :rows],
        weights=weights_all[:, :rows],
        image_size=(spec.resizer.height, spec.resizer.width),
        class_names=names,
        boxes_over_limit=over_limit,
    ).with_boxes_only()
