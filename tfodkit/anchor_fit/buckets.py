"""Matched shares broken down by box size (COCO small / medium / large at the model's input size), by aspect
ratio and by class, and the poorest of those groups."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfodkit.anchor_fit.coverage import Coverage
from tfodkit.anchor_fit.groundtruth import GroundTruth

# COCO's area limits in pixels (at the model's input size here, since the model sees that image).
SMALL_AREA, MEDIUM_AREA = 32**2, 96**2
# Aspect ratio = width / height in pixels at the model's input size (the OD API's anchor aspect_ratios are too).
ASPECT_EDGES = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)
ASPECT_NAMES = ("w/h < 1/4", "w/h 1/4-1/3", "w/h 1/3-1/2", "w/h 1/2-1", "w/h 1-2", "w/h 2-3", "w/h 3-4", "w/h >= 4")
MIN_GROUP_SHARE = 0.02  # groups with fewer boxes than this share of all boxes are not called the poorest


@dataclasses.dataclass(frozen=True)
class Group:
    """One bucket's figures."""

    kind: str  # "size", "aspect" or "class"
    name: str
    boxes: int
    matched: int
    forced: int  # boxes that get an anchor only through force_match_for_each_row
    median_best_iou: float

    @property
    def share(self) -> float:
        return self.matched / self.boxes


def pixel_sizes(groundtruth: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """[K] heights and [K] widths of every box in pixels at the model's input size."""
    boxes = groundtruth.flat_boxes
    height, width = groundtruth.image_size
    return (boxes[:, 2] - boxes[:, 0]) * height, (boxes[:, 3] - boxes[:, 1]) * width


def _groups(kind: str, labels: np.ndarray, names: list[str], coverage: Coverage) -> list[Group]:
    groups = []
    for index, name in enumerate(names):
        members = labels == index
        if members.any():
            groups.append(Group(kind, name, int(members.sum()), int(coverage.matched[members].sum()),
                                int(coverage.forced[members].sum()), float(np.median(coverage.best_iou[members]))))
    return groups


def size_groups(groundtruth: GroundTruth, coverage: Coverage) -> list[Group]:
    """COCO small (area < 32^2 px), medium (< 96^2) and large, at the model's input size."""
    heights, widths = pixel_sizes(groundtruth)
    labels = np.digitize(heights * widths, [SMALL_AREA, MEDIUM_AREA])
    return _groups("size", labels, ["small", "medium", "large"], coverage)


def aspect_groups(groundtruth: GroundTruth, coverage: Coverage) -> list[Group]:
    """Width / height buckets at ASPECT_EDGES."""
    heights, widths = pixel_sizes(groundtruth)
    ratios = np.divide(widths, heights, out=np.zeros_like(widths), where=heights > 0)
    return _groups("aspect", np.digitize(ratios, ASPECT_EDGES), list(ASPECT_NAMES), coverage)


def class_groups(groundtruth: GroundTruth, coverage: Coverage) -> list[Group]:
    """One group per class id present, named from the label map (the id where it has no name)."""
    ids = sorted(int(i) for i in np.unique(groundtruth.flat_classes))
    labels = np.searchsorted(ids, groundtruth.flat_classes)
    names = [groundtruth.class_names.get(class_id, str(class_id)) for class_id in ids]
    return _groups("class", labels, names, coverage)


def poorest(groups: list[Group], coverage: Coverage, count: int) -> list[Group]:
    """Up to `count` groups with the lowest matched share, among those below the overall share and holding at
    least MIN_GROUP_SHARE of the boxes."""
    total = len(coverage.best_iou)
    candidates = [group for group in groups if group.boxes >= MIN_GROUP_SHARE * total and group.share < coverage.share]
    return sorted(candidates, key=lambda group: (group.share, -group.boxes))[:count]
