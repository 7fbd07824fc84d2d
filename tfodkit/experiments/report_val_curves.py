"""PR curves (COCOeval's precision at IoU 0.5) and a confusion matrix at IoU 0.5 of one checkpoint's detections."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402

from tfodkit.evaluation.coco_metrics import CocoDetectionMetrics  # noqa: E402

IOU = 0.5
CONFUSION_SCORE_THRESHOLD = 0.5  # the OD API's eval_config.min_score_threshold default, as `detect --min-score`
BACKGROUND = "background"


def pr_curves(metrics: CocoDetectionMetrics) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Class name -> (recall, precision) at IoU 0.5, all areas, 100 detections: COCO's interpolated precision
    at its 101 recall thresholds, cut where precision is 0 for every higher recall; classes without ground
    truth are left out."""
    evaluator = metrics.coco_eval()
    params = evaluator.params
    table = evaluator.eval["precision"][int(np.flatnonzero(np.isclose(params.iouThrs, IOU))[0]), :, :,
                                        params.areaRngLbl.index("all"), params.maxDets.index(100)]
    names = metrics.names
    curves = {}
    for k, class_id in enumerate(params.catIds):
        precision = table[:, k]
        if np.all(precision < 0):
            continue
        reached = np.flatnonzero(precision > 0)
        end = reached[-1] + 1 if reached.size else 1
        curves[names[class_id]] = (np.asarray(params.recThrs[:end]), precision[:end])
    return curves


def confusion_matrix(metrics: CocoDetectionMetrics, score_threshold: float) -> tuple[np.ndarray, list[str]]:
    """Counts [ground truth, detected] over the classes in label-map order plus background (last row and
    column). Per image, detections scoring at least `score_threshold` are paired one-to-one with ground-truth
    boxes of any class, highest IoU first, while the IoU is at least 0.5; a pair counts in (its ground truth's
    class, its detection's class), an unpaired ground-truth box in (its class, background: missed), an unpaired
    detection in (background, its class: a false positive)."""
    names = metrics.names
    index = {class_id: i for i, class_id in enumerate(names)}
    background = len(names)
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    groundtruth: dict[int, list[dict]] = {}
    detections: dict[int, list[dict]] = {}
    for box in metrics.groundtruth:
        groundtruth.setdefault(box["image_id"], []).append(box)
    for box in metrics.detections:
        if box["score"] >= score_threshold:
            detections.setdefault(box["image_id"], []).append(box)
    for image in metrics.images:
        truth, found = groundtruth.get(image["id"], []), detections.get(image["id"], [])
        paired_truth, paired_found = set(), set()
        if truth and found:
            ious = np.asarray(coco_mask.iou([box["bbox"] for box in found], [box["bbox"] for box in truth],
                                            [0] * len(truth))).reshape(len(found), len(truth))
            for d, g in zip(*np.unravel_index(np.argsort(-ious, axis=None, kind="stable"), ious.shape)):
                if ious[d, g] < IOU:
                    break
                if d in paired_found or g in paired_truth:
                    continue
                paired_found.add(d)
                paired_truth.add(g)
                matrix[index[truth[g]["category_id"]], index[found[d]["category_id"]]] += 1
        for g, box in enumerate(truth):
            if g not in paired_truth:
                matrix[index[box["category_id"]], background] += 1
        for d, box in enumerate(found):
            if d not in paired_found:
                matrix[background, index[box["category_id"]]] += 1
    return matrix, list(names.values()) + [BACKGROUND]


def pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], aps: dict[str, float], title: str, path: Path) -> Path:
    """One precision-recall line per class, its AP@0.5 in the legend."""
    figure, axes = plt.subplots(figsize=(7.5, 5))
    for i, (name, (recall, precision)) in enumerate(curves.items()):
        style = "-" if i < 10 else "--"
        axes.plot(recall, precision, style, color=f"C{i % 10}", label=f"{name} (AP {aps.get(name, float('nan')):.3f})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision (COCO interpolated)")
    axes.set_title(textwrap.fill(title, 70))
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(fontsize="x-small", ncol=2 if len(curves) > 8 else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def confusion_plot(matrix: np.ndarray, names: list[str], title: str, path: Path) -> Path:
    """The counts as a heat map, each cell labelled (blank where 0)."""
    size = max(5.0, 0.55 * len(names) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size * 0.9))
    axes.imshow(np.log1p(matrix), cmap="Blues")
    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right", fontsize="small")
    axes.set_yticks(ticks, names, fontsize="small")
    axes.set_xlabel("detected as")
    axes.set_ylabel("ground truth")
    limit = np.log1p(matrix).max() or 1.0
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            color = "white" if np.log1p(count) > 0.6 * limit else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize="x-small", color=color)
    axes.set_title(textwrap.fill(title, 70), fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
