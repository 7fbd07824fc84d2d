"""A training checkpoint as a Detector: run through the SavedModel export's serving function in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfodkit import label_map as label_maps
from tfodkit.export.runtime import SAVED_MODEL_OUTPUTS, Detections, Detector, valid_detections
from tfodkit.export.saved_model import detection_function, label_map_path
from tfodkit.export.trained_model import load_trained_model
from tfodkit.protos import pipeline_pb2


class CheckpointDetector(Detector):
    """A training checkpoint restored into the pipeline's model, run through the SavedModel export's serving
    function in memory (no export written): images at their own size, resized by the model's image_resizer."""

    def __init__(self, config: pipeline_pb2.TrainEvalPipelineConfig, prefix: str) -> None:
        trained = load_trained_model(config, Path(prefix).parent, Path(prefix).name)
        super().__init__(Path(trained.prefix), label_maps.load(label_map_path(config)), None, trained.step)
        self._serve = detection_function(trained.model, "image_tensor")

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results = []
        for image in images:
            outputs = self._serve(tf.constant(image[np.newaxis]))
            results.append(valid_detections(*(outputs[name][0].numpy() for name in SAVED_MODEL_OUTPUTS)))
        return results
