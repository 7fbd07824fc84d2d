"""The report's content as sections of text, tables and images, shared by its Markdown and HTML renderings."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

from tfodkit.evaluation.coco_metrics import SUMMARY_METRICS
from tfodkit.experiments.report_choice import Choice
from tfodkit.experiments.report_figures import Figures
from tfodkit.experiments.report_table import POINT_COLUMNS, POINTS, Rules, RunRow


@dataclasses.dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    paragraphs: list[str] = dataclasses.field(default_factory=list)
    table: Table | None = None
    images: dict[str, Path] = dataclasses.field(default_factory=dict)  # caption -> PNG in REPORT_DIR


@dataclasses.dataclass(frozen=True)
class Document:
    title: str
    sections: list[Section]


def cell(value: object, key: str = "") -> str:
    """A value as the tables show it: n/a for missing, yes/no, steps as integers, 2 decimals for speed and
    time, 4 for metrics and losses."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if key in ("steps_per_sec", "wall_seconds"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _point_table(rows: Sequence[RunRow], point: str, choice: Choice) -> Table:
    keys = list(POINT_COLUMNS)
    headers = ["run", "status"] + [POINT_COLUMNS[key] for key in keys]
    if point == "b":
        gap = "gap" if choice.gap_key == "gap" else "OD API-style gap"
        headers += ["Δ mAP@0.5 vs recommended", f"Δ {gap} vs recommended"]
    body = []
    for row in rows:
        if point not in row.points:
            continue
        values = row.points[point]
        line = [row.run.name + (" (recommended)" if choice.row is row else ""), row.run.status]
        line += [cell(values[key], key) for key in keys]
        if point == "b":
            line += [cell(delta) for delta in choice.deltas.get(row.run.name, (None, None))]
        body.append(line)
    return Table(headers, body)


def _best_table(rows: Sequence[RunRow]) -> Table:
    body = [[row.run.name, str(row.best.step), cell(row.best.map_50), row.best.checkpoint,
             cell(row.best.exists), row.best.source] for row in rows if row.best is not None]
    return Table(["run", "step", "mAP@0.5", "checkpoint", "still exists", "from"], body)


def _recommendation(choice: Choice, rules: Rules, figures: Figures) -> Section:
    if choice.row is None:
        return Section("Recommended run", [choice.rule])
    row = choice.row
    text = [f"Recommended run: {row.run.name} ({row.run.path}), mAP@0.5 {cell(row.points['b']['map50'])} at step "
            f"{row.points['b']['step']}.", f"Rule: {choice.rule}.",
            f"(a) mAP@0.5 plateau: {rules.map_50.describe()}.", f"(b) eval loss plateau: {rules.eval_loss.describe()}."]
    if row.best is not None:
        text.append(f"Its checkpoint to use: the best by mAP@0.5, step {row.best.step} (mAP@0.5 "
                    f"{cell(row.best.map_50)}), {row.best.checkpoint}"
                    + ("" if row.best.exists else " — no longer on disk") + ".")
    if figures.val_map_50 is not None:
        text.append(f"That checkpoint re-run on val for the PR curve and confusion matrix: mAP@0.5 "
                    f"{cell(figures.val_map_50)}.")
    return Section("Recommended run", text)


def _test_section(figures: Figures) -> Section:
    title = "Test split (used for no choice)"
    intro = ("Measured once, after the run and checkpoint were chosen on val; no number here took part in any "
             "choice above.")
    if figures.test is None:
        return Section(title, [intro, f"Not evaluated: {figures.test_error}"])
    test = figures.test
    return Section(title, [intro, f"Checkpoint {figures.checkpoint} (step {test.step}) on {test.num_images} test "
                                  f"image(s) of {', '.join(figures.test_files)}."],
                   Table(["metric", "value"], [[tag, cell(test.metrics[tag])] for tag in SUMMARY_METRICS]))


def build_document(runs_dir: Path, rows: Sequence[RunRow], choice: Choice, rules: Rules,
                   curve_plots: dict[str, Path], figures: Figures, test: bool) -> Document:
    """Every section of the report, in reading order."""
    sections = [_recommendation(choice, rules, figures)]
    for point, title in POINTS.items():
        sections.append(Section(title, [], _point_table(rows, point, choice)))
    sections.append(Section("Best checkpoint by mAP@0.5", [], _best_table(rows)))
    others = [[row.run.name, row.run.status, row.note] for row in rows if not row.points]
    if others:
        sections.append(Section("Runs without numbers", [], Table(["run", "status", "reason"], others)))
    notes = [f"{row.run.name}: {row.note}" for row in rows if row.points and row.note]
    sections.append(Section("Plots", notes + figures.notes, images={**curve_plots, **figures.plots}))
    sections.append(Section("Columns", [
        "Values are read from each run's eval/ and train/ TensorBoard events at the evaluation step of the point.",
        "train loss (inference mode) = eval Loss/total_loss minus Gap/eval_minus_train_total_loss (tfodkit runs "
        "only); gap = Gap/eval_minus_train_total_loss.",
        "OD API-style gap = eval Loss/total_loss minus the mean training-mode train/Loss/total_loss logged after "
        "the previous evaluation up to this one.",
        "steps/s = median of train/steps_per_sec up to the step; wall time = seconds from the run's first event "
        "to the evaluation; plateaued = no: the rule never stopped, the point is the last evaluation.",
        "See docs/report.md.",
    ]))
    if test:
        sections.append(_test_section(figures))
    return Document(f"tfodkit report: {runs_dir}", sections)
