"""One report row per run: its metrics at (a) the mAP@0.5 plateau and (b) the eval-loss plateau, and its best
checkpoint."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from tfodkit.evaluation.coco_metrics import MAP_50
from tfodkit.evaluation.loss_gap import LOSS_GAPS, TOTAL_LOSS
from tfodkit.evaluation.summaries import STEPS_PER_SEC
from tfodkit.experiments.plateau import Plateau, Rule, find_plateau
from tfodkit.experiments.report_runs import RunDir
from tfodkit.evaluation.event_curves import Curves, Point, RunEvents, read_run_events
from tfodkit.training.best_checkpoint import BEST_DIR
from tfodkit.training.checkpoints import stored_step

GAP = LOSS_GAPS[-1]  # Gap/eval_minus_train_total_loss
# eval/ tags reported as they are: column key -> (tag, header).
EVAL_COLUMNS: dict[str, tuple[str, str]] = {
    "map50": (MAP_50, "mAP@0.5"),
    "map": ("DetectionBoxes_Precision/mAP", "mAP"),
    "ar1": ("DetectionBoxes_Recall/AR@1", "AR@1"),
    "ar10": ("DetectionBoxes_Recall/AR@10", "AR@10"),
    "ar100": ("DetectionBoxes_Recall/AR@100", "AR@100"),
    "eval_loss": (TOTAL_LOSS, "eval loss"),
}
# Every value of a point, column key -> header, in table order.
POINT_COLUMNS: dict[str, str] = {
    "step": "step",
    **{key: header for key, (_, header) in EVAL_COLUMNS.items()},
    "train_loss_inference": "train loss (inference mode)",
    "gap": "gap",
    "od_api_style_gap": "OD API-style gap",
    "steps_per_sec": "steps/s",
    "wall_seconds": "wall time (s)",
    "plateaued": "plateaued",
}
POINTS = {"a": "(a) mAP@0.5 plateau", "b": "(b) eval loss plateau"}


@dataclasses.dataclass(frozen=True)
class Rules:
    """The plateau rules of the two points."""

    map_50: Rule  # (a), maximised
    eval_loss: Rule  # (b), minimised


@dataclasses.dataclass(frozen=True)
class BestInfo:
    """The run's best checkpoint by mAP@0.5: from best/best.json when it follows mAP@0.5, else from the events."""

    step: int
    map_50: float
    checkpoint: str  # its prefix (path without .index)
    exists: bool
    source: str  # "best/best.json" or "eval events"


@dataclasses.dataclass(frozen=True)
class RunRow:
    """A run's report: values at each point (None = n/a), or a note saying why it has none."""

    run: RunDir
    events: RunEvents | None
    points: dict[str, dict[str, float | int | bool | None]]  # "a" / "b" -> column key -> value; absent: no point
    best: BestInfo | None
    note: str  # why a run has no numbers, or what to know about them

    @property
    def evaluations(self) -> int:
        return len(self.events.eval.get(MAP_50, [])) if self.events else 0


def _value_at(curves: Curves, tag: str, step: int) -> Point | None:
    return next((point for point in curves.get(tag, []) if point.step == step), None)


def od_api_style_train_loss(events: RunEvents, step: int) -> float | None:
    """The training-mode train/Loss/total_loss "near" an evaluation at `step`, as OD API users read it off the
    curve: the mean of the values logged after the previous evaluation (of eval/Loss/total_loss) up to and
    including `step`; None when that window holds no value."""
    previous = [point.step for point in events.eval.get(TOTAL_LOSS, []) if point.step < step]
    start = max(previous) if previous else -1
    window = [point.value for point in events.train.get(TOTAL_LOSS, []) if start < point.step <= step]
    return sum(window) / len(window) if window else None


def point_values(events: RunEvents, plateau: Plateau) -> dict[str, float | int | bool | None]:
    """Every column at the plateau's evaluation step (its mAP@0.5 event's wall time dates it)."""
    step = plateau.step
    values: dict[str, float | int | bool | None] = {"step": step}
    for key, (tag, _) in EVAL_COLUMNS.items():
        point = _value_at(events.eval, tag, step)
        values[key] = point.value if point else None
    eval_loss, gap = values["eval_loss"], _value_at(events.eval, GAP, step)
    values["gap"] = gap.value if gap else None
    values["train_loss_inference"] = eval_loss - gap.value if eval_loss is not None and gap else None
    train_loss = od_api_style_train_loss(events, step)
    values["od_api_style_gap"] = eval_loss - train_loss if eval_loss is not None and train_loss is not None else None
    speeds = [point.value for point in events.train.get(STEPS_PER_SEC, []) if point.step <= step]
    values["steps_per_sec"] = statistics.median(speeds) if speeds else None
    dated = _value_at(events.eval, MAP_50, step)
    values["wall_seconds"] = (dated.wall_time - events.start_wall_time
                              if dated and events.start_wall_time is not None else None)
    values["plateaued"] = plateau.plateaued
    return values


def _plateau(curves: Curves, tag: str, rule: Rule) -> Plateau | None:
    points = curves.get(tag, [])
    if not points:
        return None
    return find_plateau([point.step for point in points], [point.value for point in points], rule)


def checkpoint_steps(run_dir: Path) -> dict[int, str]:
    """Step -> prefix of the checkpoints in run_dir (the OD API numbers its ckpt-N by save, not by step, so the
    step is read from the checkpoint)."""
    found = {}
    for index in run_dir.glob("*.index"):
        prefix = str(index.with_suffix(""))
        step = stored_step(prefix)
        if step is not None:  # else not a training checkpoint with a step
            found[step] = prefix
    return found


def best_info(run: RunDir, events: RunEvents) -> BestInfo | None:
    """best/best.json when it follows mAP@0.5; else the first evaluation with the highest mAP@0.5 and the run's
    checkpoint of that step, if one is still there (max_to_keep may have deleted it)."""
    if run.best is not None and run.best.metric == MAP_50:
        prefix = run.path / BEST_DIR / run.best.checkpoint
        return BestInfo(run.best.step, run.best.value, str(prefix), Path(f"{prefix}.index").is_file(),
                        f"{BEST_DIR}/best.json")
    points = events.eval.get(MAP_50, [])
    if not points:
        return None
    best = max(points, key=lambda point: point.value)  # max keeps the first of equal values
    prefix = checkpoint_steps(run.path).get(best.step)
    return BestInfo(best.step, best.value, prefix or str(run.path / f"ckpt-{best.step}"), prefix is not None,
                    "eval events")


def run_row(run: RunDir, rules: Rules) -> RunRow:
    """The row of one run: failed runs and runs without evaluations get a note and no numbers."""
    if run.sweep_state == "failed":
        error = run.sweep_error.strip().splitlines()
        return RunRow(run, None, {}, None, "failed" + (f": {error[-1]}" if error else ""))
    events = read_run_events(run.path)
    if not events.eval.get(MAP_50):
        return RunRow(run, events, {}, None, f"no evaluations: no {MAP_50} in {run.path / 'eval'}")
    points = {}
    for key, tag, rule in (("a", MAP_50, rules.map_50), ("b", TOTAL_LOSS, rules.eval_loss)):
        plateau = _plateau(events.eval, tag, rule)
        if plateau is not None:
            points[key] = point_values(events, plateau)
    note = "" if "b" in points else f"no eval {TOTAL_LOSS} (an evaluation of an exported model): no point (b)"
    return RunRow(run, events, points, best_info(run, events), note)
