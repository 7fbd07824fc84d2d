"""Stop a run cleanly on SIGINT or SIGTERM: the first signal asks the loop to stop, a second one exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Callable

from tfodkit.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """While active (a context manager), SIGINT and SIGTERM set `signum` instead of killing the process; the loop
    calls `check()` where stopping is safe. A second signal ends the process at once with 128 + its number.

    `signals` are the ones to handle (MultiWorkerMirroredStrategy training leaves SIGTERM to TensorFlow's
    PreemptionCheckpointHandler). Outside the main thread, where Python cannot install handlers, it does nothing.
    """

    def __init__(self, report: Callable[[str], None], signals: tuple[int, ...] = SIGNALS) -> None:
        self._report = report
        self._signals = signals
        self._previous: dict[int, object] = {}
        self.signum: int | None = None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            print(f"\n{signal_name(signum)} again: exiting at once, without saving", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        self._report(f"{signal_name(signum)} received: stopping after the current step "
                     "(send it again to exit at once, without saving)")

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise Interrupted if a signal came."""
        if self.signum is not None:
            raise Interrupted(self.signum)
