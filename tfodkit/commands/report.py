"""`tfodkit report RUNS_DIR`: compare runs from their event files in Markdown, CSV and HTML, and pick one."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfodkit.errors import TfodkitError
from tfodkit.experiments import plateau
from tfodkit.experiments.plateau import Rule
from tfodkit.experiments.report_build import ReportOptions, write_report
from tfodkit.experiments.report_table import Rules
from tfodkit.experiments.report_val_curves import CONFUSION_SCORE_THRESHOLD


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read every run under RUNS_DIR (a sweep directory, or one run directory of `tfodkit train` or "
        "model_main_tf2) from its TensorBoard events and write REPORT_DIR/report.{md,csv,html} and PNG plots. Each "
        "run is reported at (a) where eval mAP@0.5 plateaus and (b) where eval Loss/total_loss stops falling. "
        "Plateau rule (Keras EarlyStopping over evaluations): a curve plateaus once PATIENCE evaluations in a row "
        "fail to improve its best value by more than MIN_DELTA (absolute); the point is that best evaluation, or "
        "the last evaluation (flagged not plateaued) when this never happens. Recommended run: the highest "
        "mAP@0.5 at (b); runs within --map-min-delta of it are tied and the smallest eval-minus-train loss gap "
        "wins. See docs/report.md."
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="a sweep directory holding runs, or one run directory")
    parser.add_argument("--out", metavar="REPORT_DIR", help="where the report goes (default: RUNS_DIR/report)")
    parser.add_argument("--test", action="store_true",
                        help="also evaluate the recommended run's best checkpoint once on the test split (the "
                             "test shards of the TFRecords' manifest.json); reported apart, used for no choice")
    parser.add_argument("--map-min-delta", type=float, default=plateau.MAP_MIN_DELTA, metavar="X",
                        help="(a): an mAP@0.5 gain must exceed X to count as an improvement; also the tie "
                             "tolerance of the recommendation (default: %(default)s)")
    parser.add_argument("--map-patience", type=int, default=plateau.MAP_PATIENCE, metavar="N",
                        help="(a): evaluations without improvement before mAP@0.5 counts as plateaued "
                             "(default: %(default)s)")
    parser.add_argument("--loss-min-delta", type=float, default=plateau.LOSS_MIN_DELTA, metavar="X",
                        help="(b): an eval loss drop must exceed X to count as an improvement (default: %(default)s)")
    parser.add_argument("--loss-patience", type=int, default=plateau.LOSS_PATIENCE, metavar="N",
                        help="(b): evaluations without improvement before the eval loss counts as plateaued "
                             "(default: %(default)s)")
    parser.add_argument("--confusion-score-threshold", type=float, default=CONFUSION_SCORE_THRESHOLD, metavar="S",
                        help="detections scoring at least S enter the confusion matrix (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    rules = Rules(Rule(args.map_min_delta, args.map_patience, minimise=False),
                  Rule(args.loss_min_delta, args.loss_patience, minimise=True))
    report = write_report(ReportOptions(
        runs_dir=Path(args.runs_dir), out=Path(args.out) if args.out else None, rules=rules,
        tie_tolerance=args.map_min_delta, confusion_score_threshold=args.confusion_score_threshold, test=args.test))
    print(f"{len(report.rows)} run(s) read; report written to {report.out}/report.html (also report.md, "
          "report.csv)")
    choice = report.choice
    print(f"recommended: {choice.row.run.name}" if choice.row else "no run recommended")
    print(f"rule: {choice.rule}")
    for note in report.figures.notes:
        print(f"note: {note}")
    if args.test and report.figures.test is None:
        raise TfodkitError(f"--test: the test split was not evaluated: {report.figures.test_error}")
    return 0
