"""Boxes that no anchor shape could match: even an anchor of the box's own shape, centred at the nearest anchor
centre the feature maps offer, overlaps it below the matched threshold. Only finer feature maps help those."""

from __future__ import annotations

import numpy as np

CENTRES_PER_CHUNK = 4096


def best_centred_iou(anchors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[K] IoU of each box with its own shape moved to the nearest anchor centre ([N, 4] anchors, [K, 4] boxes)."""
    centres = np.unique(np.stack([anchors[:, 0] + anchors[:, 2], anchors[:, 1] + anchors[:, 3]], axis=1) / 2, axis=0)
    heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    box_y, box_x = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    best = np.zeros(len(boxes), np.float32)
    for start in range(0, len(centres), CENTRES_PER_CHUNK):
        chunk = centres[start:start + CENTRES_PER_CHUNK]
        overlap_h = np.maximum(0.0, heights[:, None] - np.abs(box_y[:, None] - chunk[None, :, 0]))
        overlap_w = np.maximum(0.0, widths[:, None] - np.abs(box_x[:, None] - chunk[None, :, 1]))
        intersection = overlap_h * overlap_w
        area = (heights * widths)[:, None]
        iou = np.divide(intersection, 2 * area - intersection, out=np.zeros_like(intersection),
                        where=intersection > 0)
        best = np.maximum(best, iou.max(axis=1))
    return best
