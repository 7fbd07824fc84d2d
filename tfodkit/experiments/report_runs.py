"""The run directories under RUNS_DIR and how each ended (sweep_status.json, run_summary.json, best/best.json)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from tfodkit.errors import TfodkitError
from tfodkit.evaluation.summaries import EVAL_DIR, TRAIN_DIR
from tfodkit.experiments.run_status import SWEEP_STATUS_FILE
from tfodkit.training import best_checkpoint, run_summary
from tfodkit.training.best_checkpoint import Best
from tfodkit.training.run_summary import RunSummary
from tfodkit.training.trainer import PIPELINE_FILE

# What marks a directory as a run: its event directories or the files tfodkit writes into it.
_RUN_MARKERS = (EVAL_DIR, TRAIN_DIR, SWEEP_STATUS_FILE, run_summary.RUN_SUMMARY_FILE, PIPELINE_FILE)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One run directory and what its bookkeeping files say."""

    name: str  # its path relative to RUNS_DIR (its own name when it is RUNS_DIR)
    path: Path
    sweep_state: str | None  # sweep_status.json's state, None without one
    sweep_error: str  # sweep_status.json's error (last lines of stderr), "" without one
    summary: RunSummary | None
    best: Best | None

    @property
    def status(self) -> str:
        """failed / running / interrupted (from the sweep), stopped early / finished (run_summary.json), or
        "no run_summary.json" (an unfinished run, or one from model_main_tf2)."""
        if self.sweep_state in ("failed", "running", "interrupted"):
            return self.sweep_state
        if self.summary is not None:
            return "stopped early" if self.summary.stopped_early else "finished"
        return "no run_summary.json"


def _sweep_status(path: Path) -> tuple[str | None, str]:
    file = path / SWEEP_STATUS_FILE
    if not file.is_file():
        return None, ""
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
        return str(values["state"]), str(values.get("error") or "")
    except (ValueError, KeyError, TypeError) as error:
        raise TfodkitError(f"{file}: not a sweep status file ({error!r}); delete it or run the sweep again") from None


def _read(root: Path, path: Path) -> RunDir:
    state, error = _sweep_status(path)
    name = path.relative_to(root).as_posix() if path != root else root.resolve().name
    return RunDir(name=name, path=path, sweep_state=state, sweep_error=error, summary=run_summary.read(path),
                  best=best_checkpoint.read(path))


def _is_run(path: Path) -> bool:
    return any((path / marker).exists() for marker in _RUN_MARKERS)


def find_runs(runs_dir: Path, report_dir: Path) -> list[RunDir]:
    """RUNS_DIR itself when it is a run, else every run directory below it (not below a run, nor in
    report_dir), by name."""
    if not runs_dir.is_dir():
        raise TfodkitError(f"RUNS_DIR {runs_dir}: no such directory; give a run directory (--model_dir of "
                           "`tfodkit train` or model_main_tf2) or a sweep directory holding runs")
    if (runs_dir / EVAL_DIR).is_dir():
        return [_read(runs_dir, runs_dir)]
    found = []
    for directory, subdirectories, _ in os.walk(runs_dir):
        path = Path(directory)
        if path == report_dir:
            subdirectories.clear()
        elif path != runs_dir and _is_run(path):
            found.append(_read(runs_dir, path))
            subdirectories.clear()
        else:
            subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
    if not found:
        raise TfodkitError(f"RUNS_DIR {runs_dir}: no runs found (a run is a directory with an {EVAL_DIR}/ "
                           f"subdirectory of TensorBoard event files, as `tfodkit train` and model_main_tf2 write)")
    return sorted(found, key=lambda run: run.name)
