"""MODEL_DIR/run_summary.json: how a training run ended; written only when `train` returns normally."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from tfodkit.errors import TfodkitError

RUN_SUMMARY_FILE = "run_summary.json"


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """The end of a finished run: where it stopped and why, its best evaluation, its speed."""

    final_step: int
    num_steps: int  # the step count it was asked to train
    stopped_early: bool
    stop_reason: str
    best_step: int | None  # the evaluation MODEL_DIR/best/ holds (None: no best checkpoint)
    best_metric: str
    best_value: float | None
    steps_per_sec: float  # NaN when no call was timed (written as null)
    wall_seconds: float  # of the `train` call that finished the run (a resumed run: its last part)


def write(model_dir: str | Path, summary: RunSummary) -> None:
    """Write run_summary.json atomically (a temporary file renamed over it)."""
    values = dataclasses.asdict(summary)
    values = {key: None if isinstance(value, float) and not math.isfinite(value) else value
              for key, value in values.items()}
    path = Path(model_dir) / RUN_SUMMARY_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def clear(model_dir: str | Path) -> None:
    """Remove run_summary.json: the run is training again, so it is not finished."""
    (Path(model_dir) / RUN_SUMMARY_FILE).unlink(missing_ok=True)


def read(model_dir: str | Path) -> RunSummary | None:
    """The run's summary, or None when it has none (never finished, interrupted or failed)."""
    path = Path(model_dir) / RUN_SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        if values["steps_per_sec"] is None:
            values["steps_per_sec"] = math.nan
        return RunSummary(**values)
    except (ValueError, TypeError, KeyError) as error:
        raise TfodkitError(f"{path}: not a tfodkit run summary ({error}); delete it to train the run again") from None
