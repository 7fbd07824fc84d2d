"""The recommended run's figures from its checkpoint: per-class AP@0.5, PR curves and confusion matrix on val,
and with --test its test-split metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50, PER_CLASS_AP_50_PREFIX
from tfodkit.evaluation.exported_model import ModelEvaluation, detect_records, eval_max_boxes, split_records
from tfodkit.evaluation.images import VisualizationOptions
from tfodkit.experiments.report_plots import per_class_plot
from tfodkit.experiments.report_table import RunRow
from tfodkit.experiments.report_test_split import evaluate_test_split
from tfodkit.experiments.report_val_curves import confusion_matrix, confusion_plot, pr_curves, pr_plot
from tfodkit.export.checkpoint_detector import CheckpointDetector
from tfodkit.training.trainer import PIPELINE_FILE


@dataclasses.dataclass
class Figures:
    """What the recommended run's checkpoint gave: plots (title -> path), notes, the val mAP@0.5 recomputed, and
    the test evaluation (with --test)."""

    plots: dict[str, Path] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    checkpoint: str | None = None
    step: int | None = None
    val_map_50: float | None = None
    test: ModelEvaluation | None = None
    test_files: list[str] = dataclasses.field(default_factory=list)
    test_error: str = ""


def _checkpoint_figures(row: RunRow, figures: Figures, out: Path, score_threshold: float, test: bool) -> None:
    best = row.best
    if not best.exists:
        raise TfodkitError(f"the best checkpoint (step {best.step}, {best.checkpoint}) no longer exists, so it "
                           "cannot be run")
    config_path = row.run.path / PIPELINE_FILE
    if not config_path.is_file():
        raise TfodkitError(f"{config_path}: not found; the run's pipeline.config is needed to build its model")
    config = load_pipeline(config_path)
    detector = CheckpointDetector(config, best.checkpoint)
    figures.checkpoint, figures.step = best.checkpoint, detector.step
    metrics, _ = detect_records(detector, split_records(config, "val"), eval_max_boxes(config),
                                VisualizationOptions(num_visualizations=0))
    values = metrics.compute()
    figures.val_map_50 = values[MAP_50]
    aps = {tag.removeprefix(PER_CLASS_AP_50_PREFIX): value for tag, value in values.items()
           if tag.startswith(PER_CLASS_AP_50_PREFIX)}
    name = f"{row.run.name}, step {detector.step}"
    figures.plots["PR curves on val (IoU 0.5)"] = pr_plot(
        pr_curves(metrics), aps, f"{name}: precision-recall on val, IoU 0.5", out / "pr_curve.png")
    matrix, names = confusion_matrix(metrics, score_threshold)
    figures.plots["confusion matrix on val"] = confusion_plot(
        matrix, names, f"{name}: val, IoU 0.5, score >= {score_threshold:g}", out / "confusion_matrix.png")
    if test:
        try:
            figures.test, figures.test_files = evaluate_test_split(detector, config, out)
        except TfodkitError as error:
            figures.test_error = str(error)


def recommended_figures(row: RunRow | None, out: Path, score_threshold: float, test: bool) -> Figures:
    """The figures of the recommended run; whatever cannot be made is a note (and, with --test, a test_error)."""
    figures = Figures()
    if row is None or row.best is None:
        figures.notes.append("no recommended run, so no per-class AP, PR curve or confusion matrix")
        figures.test_error = "no recommended run to evaluate" if test else ""
        return figures
    plot = per_class_plot(row, row.best.step, out / "per_class_ap50.png")
    if plot is not None:
        figures.plots[f"per-class AP@0.5 at step {row.best.step}"] = plot
    try:
        _checkpoint_figures(row, figures, out, score_threshold, test)
    except TfodkitError as error:
        figures.notes.append(f"no PR curve or confusion matrix: {error}")
        if test and not figures.test_error:
            figures.test_error = str(error)
    return figures
