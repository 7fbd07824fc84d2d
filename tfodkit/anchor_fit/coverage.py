"""Each ground-truth box's best IoU with any anchor, and whether the config's matcher gives it a positive anchor.

Anchors come from the model's own generator and feature map sizes (tfodkit.model.builder), IoU from its
similarity calculator and matches from its ArgMaxMatcher, image by image as in target assignment.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np
import tensorflow as tf

from tfodkit.anchor_fit.groundtruth import GroundTruth
from tfodkit.errors import TfodkitError
from tfodkit.model import builder
from tfodkit.model.matcher import ArgMaxMatcher
from tfodkit.model.similarity import iou
from tfodkit.protos import pipeline_pb2

IMAGES_PER_CHUNK = 32  # images whose [boxes x anchors] IoU matrices are computed at once


@dataclasses.dataclass(frozen=True)
class AnchorGrid:
    """What anchors depend on besides the anchor generator: feature map sizes and the model's input size."""

    feature_shapes: tuple[tuple[int, int], ...]
    image_size: tuple[int, int]

    @classmethod
    def of_model(cls, config: pipeline_pb2.TrainEvalPipelineConfig) -> "AnchorGrid":
        """Build the config's model once and read its feature map sizes (anchor settings do not change them)."""
        model = builder.build_ssd(config)
        shapes = tuple((int(out.shape[1]), int(out.shape[2])) for out in model.feature_extractor.outputs)
        return cls(shapes, model.image_size)

    def anchors(self, config: pipeline_pb2.TrainEvalPipelineConfig) -> np.ndarray:
        """[N, 4] normalised anchors of the config's anchor generator over this grid, as the model builds them."""
        try:
            generator = builder.anchor_generator(config.model.ssd)
            return generator.generate(list(self.feature_shapes), *self.image_size)
        except ValueError as error:
            raise TfodkitError(f"model.ssd.anchor_generator: {error}") from None


def config_matcher(config: pipeline_pb2.TrainEvalPipelineConfig) -> ArgMaxMatcher:
    """The matcher the config's model trains with."""
    return builder.matcher(config.model.ssd)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Per ground-truth box (image after image, GroundTruth.flat_* order)."""

    best_iou: np.ndarray  # [K] highest IoU with any anchor
    matched: np.ndarray  # [K] bool: the matcher's thresholds give it an anchor (force_match_for_each_row left out)
    positive: np.ndarray  # [K] bool: the config's matcher, force_match_for_each_row included, gives it an anchor
    num_anchors: int
    matched_threshold: float | None
    force_match: bool

    @property
    def share(self) -> float:
        """Share of boxes matched by the thresholds: the figure inspect-anchors reports and its search raises."""
        return float(self.matched.mean())

    @property
    def forced(self) -> np.ndarray:
        """[K] bool: boxes that get an anchor only through force_match_for_each_row (IoU below the threshold)."""
        return self.positive & ~self.matched


def _owned_rows(matches: tf.Tensor, num_rows: int) -> tf.Tensor:
    """[B, N] match values -> [B, M] bool: rows (boxes) that at least one anchor is matched to."""
    # Match values are -2 (ignored), -1 (unmatched) or a row: count each image's anchors per value.
    counts = tf.math.bincount(matches + 2, minlength=num_rows + 2, maxlength=num_rows + 2, axis=-1)
    return counts[:, 2:] > 0


@functools.lru_cache(maxsize=4)
def _chunk_step(matcher: ArgMaxMatcher) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, ...]]:
    """A compiled step for one matcher: boxes [B, M, 4], valid [B, M], anchors [N, 4] -> best IoU, matched by the
    thresholds, positive by the full matcher (each [B, M])."""
    threshold_matcher = dataclasses.replace(matcher, force_match_for_each_row=False)

    @tf.function(reduce_retracing=True)
    def step(boxes: tf.Tensor, valid: tf.Tensor, anchors: tf.Tensor) -> tuple[tf.Tensor, ...]:
        similarity = iou(boxes, anchors[tf.newaxis])
        num_rows = tf.shape(boxes)[1]
        matched = _owned_rows(threshold_matcher.match(similarity, valid), num_rows)
        positive = _owned_rows(matcher.match(similarity, valid), num_rows) if matcher.force_match_for_each_row \
            else matched
        return tf.reduce_max(similarity, axis=-1), matched, positive

    return step


def measure(anchors: np.ndarray, groundtruth: GroundTruth, matcher: ArgMaxMatcher) -> Coverage:
    """Match every image's boxes to the anchors with `matcher` (and with it minus force_match_for_each_row)."""
    step = _chunk_step(matcher)
    anchor_tensor = tf.constant(anchors, tf.float32)
    results: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(groundtruth.boxes), IMAGES_PER_CHUNK):
        chunk = slice(start, start + IMAGES_PER_CHUNK)
        valid = groundtruth.valid[chunk]
        outputs = step(tf.constant(groundtruth.boxes[chunk]), tf.constant(valid), anchor_tensor)
        for result, output in zip(results, outputs):
            result.append(output.numpy()[valid])
    best, matched, positive = (np.concatenate(result) for result in results)
    return Coverage(
        best_iou=best,
        matched=matched,
        positive=positive,
        num_anchors=int(anchors.shape[0]),
        matched_threshold=matcher.matched_threshold,
        force_match=matcher.force_match_for_each_row,
    )
