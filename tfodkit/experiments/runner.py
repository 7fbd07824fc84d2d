"""Run a sweep's training commands as child processes, N at once, logged to RUN/train.log; pass signals on."""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import BinaryIO, Callable, Sequence

from tfodkit.experiments.run_status import RunStatus, write_status
from tfodkit.training.interruption import SIGNALS, signal_name

LOG_FILE = "train.log"
ERROR_LINES = 10  # of a failed run's output, kept in sweep_status.json
_POLL_S = 0.2


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    directory: Path
    command: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Outcome:
    state: str  # finished, failed or interrupted
    exit_code: int
    error: str  # the last lines of its output (not for a finished run)
    seconds: float


@dataclasses.dataclass
class _Running:
    job: Job
    label: str  # "[2/8] NAME"
    process: subprocess.Popen
    log: BinaryIO
    log_start: int  # where this attempt's output starts in the log
    started: float


class _Signals:
    """While active, SIGINT and SIGTERM are recorded (in order) instead of ending the process."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


def _tail(path: Path, start: int) -> str:
    with path.open("rb") as log:
        log.seek(start)
        text = log.read().decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(lines[-ERROR_LINES:])


def _start(job: Job, label: str) -> _Running:
    job.directory.mkdir(parents=True, exist_ok=True)
    log = (job.directory / LOG_FILE).open("ab")
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} tfodkit sweep runs: {shlex.join(job.command)}\n".encode())
    log.flush()
    write_status(job.directory, RunStatus("running", list(job.command), None, "", 0.0))
    # A session of its own: a Ctrl-C in the terminal reaches the sweep only, which passes it on once (the trainer
    # takes a second signal as "exit at once, without saving").
    process = subprocess.Popen(job.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    return _Running(job, label, process, log, log.tell(), time.monotonic())


def _finish(running: _Running, interrupted: bool) -> Outcome:
    running.log.close()
    code = running.process.returncode
    state = "finished" if code == 0 else "interrupted" if interrupted else "failed"
    error = "" if code == 0 else _tail(running.job.directory / LOG_FILE, running.log_start)
    outcome = Outcome(state, code, error, time.monotonic() - running.started)
    write_status(running.job.directory, RunStatus(state, list(running.job.command), code, error, outcome.seconds))
    return outcome


def _describe(outcome: Outcome) -> str:
    took = f"{outcome.seconds:.0f} s"
    if outcome.state == "finished":
        return f"finished in {took}"
    if outcome.state == "interrupted":
        return f"interrupted (exit {outcome.exit_code}) after {took}; it resumes from its last checkpoint"
    last = outcome.error.splitlines()[-1] if outcome.error else "no output"
    return f"{outcome.state} (exit {outcome.exit_code}) after {took}: {last}"


def run_jobs(jobs: Sequence[Job], parallel: int,
             report: Callable[[str], None]) -> tuple[dict[str, Outcome], int | None]:
    """Run the jobs, `parallel` at a time, in order; a failed job does not stop the others. The first SIGINT or
    SIGTERM is passed on to the running jobs (a later one too) and no new job starts. Returns each run job's
    outcome by name and the signal that stopped the sweep (None when none came)."""
    pending = list(enumerate(jobs, start=1))
    running: list[_Running] = []
    outcomes: dict[str, Outcome] = {}
    forwarded = 0
    with _Signals() as signals:
        try:
            while pending or running:
                while pending and len(running) < parallel and not signals.received:
                    index, job = pending.pop(0)
                    label = f"[{index}/{len(jobs)}] {job.name}"
                    running.append(_start(job, label))
                    report(f"{label}: training (output: {job.directory / LOG_FILE})")
                for signum in signals.received[forwarded:]:
                    if forwarded == 0:
                        report(f"{signal_name(signum)} received: stopping {len(running)} running run(s), each "
                               "saves a checkpoint (send it again to stop them at once, without saving)")
                    for child in running:
                        child.process.send_signal(signum)
                    forwarded += 1
                for child in [child for child in running if child.process.poll() is not None]:
                    running.remove(child)
                    outcomes[child.job.name] = _finish(child, interrupted=bool(signals.received))
                    report(f"{child.label}: {_describe(outcomes[child.job.name])}")
                if pending and signals.received and not running:
                    break
                time.sleep(_POLL_S)
        finally:
            for child in running:  # only after an unexpected error in the sweep itself
                child.process.send_signal(signal.SIGTERM)
                child.process.wait()
                child.log.close()
    return outcomes, signals.received[0] if signals.received else None
