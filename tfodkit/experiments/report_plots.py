"""The report's curve plots (every run on one figure per quantity) and the recommended run's per-class AP@0.5."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from tfodkit.evaluation.coco_metrics import MAP_50, PER_CLASS_AP_50_PREFIX  # noqa: E402
from tfodkit.evaluation.loss_gap import TOTAL_LOSS  # noqa: E402
from tfodkit.experiments.report_table import GAP, RunRow  # noqa: E402
from tfodkit.evaluation.event_curves import Point  # noqa: E402

AR_100 = "DetectionBoxes_Recall/AR@100"
DPI = 110
SIZE = (7.5, 4.5)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _line(axes: plt.Axes, points: Sequence[Point], **style: object) -> None:
    axes.plot([point.step for point in points], [point.value for point in points], **style)


def _curve_figure(rows: Sequence[RunRow], tag: str, ylabel: str, title: str, path: Path,
                  point_key: str | None = None) -> Path:
    """One line per run of an eval/ tag; with point_key, that run's point (a) or (b) marked."""
    figure, axes = plt.subplots(figsize=SIZE)
    if not any(row.events.eval.get(tag) for row in rows):
        axes.text(0.5, 0.5, f"no run has {tag} in its eval/ events", ha="center", va="center",
                  transform=axes.transAxes)
    for index, row in enumerate(rows):
        points = row.events.eval.get(tag, [])
        if not points:
            continue
        color = f"C{index % 10}"
        _line(axes, points, marker=".", color=color, label=row.run.name)
        point = row.points.get(point_key) if point_key else None
        if point and point.get("map50" if tag == MAP_50 else "eval_loss") is not None:
            value = point["map50"] if tag == MAP_50 else point["eval_loss"]
            axes.plot([point["step"]], [value], marker="o", markersize=10, markerfacecolor="none", color=color)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    return _save(figure, path)


def _losses_figure(rows: Sequence[RunRow], path: Path) -> Path:
    """Eval loss (solid), train loss in inference mode (dashed) and the training-mode train loss (faint)."""
    figure, axes = plt.subplots(figsize=SIZE)
    for index, row in enumerate(rows):
        color = f"C{index % 10}"
        evaluation = row.events.eval.get(TOTAL_LOSS, [])
        _line(axes, evaluation, marker=".", color=color, label=f"{row.run.name}: eval")
        gaps = {point.step: point.value for point in row.events.eval.get(GAP, [])}
        inference = [Point(point.step, point.value - gaps[point.step], point.wall_time)
                     for point in evaluation if point.step in gaps]
        if inference:
            _line(axes, inference, linestyle="--", marker=".", color=color,
                  label=f"{row.run.name}: train (inference mode)")
        _line(axes, row.events.train.get(TOTAL_LOSS, []), color=color, alpha=0.3, linewidth=1,
              label=f"{row.run.name}: train (training mode)")
        point = row.points.get("b")
        if point and point["eval_loss"] is not None:
            axes.plot([point["step"]], [point["eval_loss"]], marker="o", markersize=10, markerfacecolor="none",
                      color=color)
    axes.set_xlabel("step")
    axes.set_ylabel(TOTAL_LOSS)
    axes.set_title("Loss/total_loss; circles: (b) eval loss plateau")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small")
    return _save(figure, path)


def curve_plots(rows: Sequence[RunRow], out: Path) -> dict[str, Path]:
    """The curve PNGs in `out` for the rows with evaluations: title -> path."""
    rows = [row for row in rows if row.points]
    return {
        "mAP@0.5 vs step": _curve_figure(rows, MAP_50, "mAP@0.5", "eval mAP@0.5; circles: (a) mAP@0.5 plateau",
                                         out / "map50.png", "a"),
        "eval and train loss vs step": _losses_figure(rows, out / "loss.png"),
        "gap vs step": _curve_figure(rows, GAP, "eval minus train loss", f"{GAP} (inference mode, same weights)",
                                     out / "gap.png"),
        "AR@100 vs step": _curve_figure(rows, AR_100, "AR@100", "eval AR@100", out / "ar100.png"),
    }


def per_class_plot(row: RunRow, step: int, path: Path) -> Path | None:
    """Bars of the run's per-class AP@0.5 at `step` (None when its events hold no per-class tags there);
    -1 (a class without ground truth in the split) is drawn as no bar, and named."""
    values = {tag.removeprefix(PER_CLASS_AP_50_PREFIX): point.value
              for tag, points in row.events.eval.items() if tag.startswith(PER_CLASS_AP_50_PREFIX)
              for point in points if point.step == step}
    if not values:
        return None
    names = list(values)
    figure, axes = plt.subplots(figsize=(max(5.0, 0.5 * len(names) + 2), 4))
    heights = [max(values[name], 0.0) for name in names]
    axes.bar(range(len(names)), heights, color="C0")
    axes.set_xticks(range(len(names)), [name if values[name] >= 0 else f"{name}\n(no GT)" for name in names],
                    rotation=45 if len(names) > 12 else 0, fontsize="small")
    axes.set_ylim(0, 1)
    axes.set_ylabel("AP@0.5")
    axes.set_title(textwrap.fill(f"{row.run.name}: per-class AP@0.5 on val at step {step}", 70))
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)
