"""RUN/sweep_status.json: what the sweep last saw of a run (running, finished, failed, interrupted) and why."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

SWEEP_STATUS_FILE = "sweep_status.json"


@dataclasses.dataclass(frozen=True)
class RunStatus:
    state: str  # running, finished, failed or interrupted
    command: list[str]  # the command the sweep ran
    exit_code: int | None  # None while running; negative: killed by that signal
    error: str  # the last lines of the run's output when it failed or was interrupted
    seconds: float  # wall time of this attempt


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Write RUN/sweep_status.json atomically."""
    path = Path(run_dir) / SWEEP_STATUS_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(status), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
