"""`tfodkit report`: read the runs, find the plateaus, choose a run, make the plots and write the report files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfodkit.errors import TfodkitError
from tfodkit.experiments.plateau import Rule
from tfodkit.experiments.report_choice import Choice, recommend
from tfodkit.experiments.report_document import build_document
from tfodkit.experiments.report_figures import Figures, recommended_figures
from tfodkit.experiments.report_plots import curve_plots
from tfodkit.experiments.report_runs import find_runs
from tfodkit.experiments.report_table import Rules, RunRow, run_row
from tfodkit.experiments.report_writers import render_html, render_markdown, write_csv

REPORT_DIR = "report"  # RUNS_DIR/report unless --out says otherwise


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    runs_dir: Path
    out: Path | None  # None: RUNS_DIR/report
    rules: Rules
    tie_tolerance: float  # mAP@0.5 differences at (b) up to this count as ties
    confusion_score_threshold: float
    test: bool


@dataclasses.dataclass(frozen=True)
class Report:
    out: Path
    rows: list[RunRow]
    choice: Choice
    figures: Figures


def _check(rule: Rule, flag: str) -> None:
    if rule.patience < 1:
        raise TfodkitError(f"--{flag}-patience: must be at least 1 evaluation, got {rule.patience}")
    if not rule.min_delta >= 0:
        raise TfodkitError(f"--{flag}-min-delta: must be 0 or more, got {rule.min_delta}")


def write_report(options: ReportOptions) -> Report:
    """Write report.md, report.csv, report.html and the PNGs into the report directory."""
    _check(options.rules.map_50, "map")
    _check(options.rules.eval_loss, "loss")
    if not 0 <= options.confusion_score_threshold <= 1:
        raise TfodkitError(f"--confusion-score-threshold: must be in [0, 1], got {options.confusion_score_threshold}")
    out = options.out or options.runs_dir / REPORT_DIR
    runs = find_runs(options.runs_dir, out)
    rows = [run_row(run, options.rules) for run in runs]
    choice = recommend(rows, options.tie_tolerance)
    out.mkdir(parents=True, exist_ok=True)
    plots = curve_plots(rows, out) if any(row.points for row in rows) else {}
    figures = recommended_figures(choice.row, out, options.confusion_score_threshold, options.test)
    document = build_document(options.runs_dir, rows, choice, options.rules, plots, figures, options.test)
    (out / "report.md").write_text(render_markdown(document, out), encoding="utf-8")
    (out / "report.html").write_text(render_html(document, out), encoding="utf-8")
    write_csv(out / "report.csv", rows, choice)
    return Report(out, rows, choice, figures)
