"""Early stopping by Keras EarlyStopping's rule, its state rebuilt from eval/ events on resume, its end in train/."""

from __future__ import annotations

import dataclasses
from pathlib import Path


from tfodkit.evaluation.event_curves import read_curves

@dataclasses.dataclass
class EarlyStopping:
    """Keras EarlyStopping over evaluations: an evaluation improves when its value is better than the best so
    far by more than `min_delta` (lower when `minimise`); the first always does. `patience` None: never stops.

    Only an evaluation at a step later than the last one seen counts (a re-evaluation of a step changes nothing).
    """

    metric: str
    patience: int | None
    min_delta: float
    minimise: bool
    best: float | None = None
    best_step: int | None = None
    wait: int = 0  # evaluations in a row without an improvement
    last_step: int | None = None
    stopped_at: int | None = None

    def improves(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.minimise:
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def update(self, step: int, value: float) -> bool:
        """Count the evaluation at `step`; True when the run should stop now (or has stopped)."""
        if self.stopped_at is not None or (self.last_step is not None and step <= self.last_step):
            return self.stopped
        self.last_step = step
        if self.improves(value):
            self.best, self.best_step, self.wait = value, step, 0
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                self.stopped_at = step
        return self.stopped

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def reason(self) -> str:
        """Why the run stopped, in one line (empty while it has not)."""
        if self.stopped_at is None:
            return ""
        return (f"{self.metric} did not improve by more than {self.min_delta:g} for {self.wait} evaluation(s) "
                f"(best {self.best:.6g} at step {self.best_step}); stopped at step {self.stopped_at}")


def eval_history(eval_dir: str | Path, tag: str, up_to_step: int) -> list[tuple[int, float]]:
    """(step, value) of a scalar tag in the eval/ event files, one per step (the last written: a resumed run's
    re-evaluation replaces the one its lost steps made), steps up to `up_to_step`, in step order."""
    curves, _ = read_curves(Path(eval_dir))
    return [(point.step, point.value) for point in curves.get(tag, []) if point.step <= up_to_step]


def resume(eval_dir: str | Path, metric: str, patience: int | None, min_delta: float, minimise: bool,
           up_to_step: int) -> EarlyStopping:
    """The early-stopping state of a run resumed at `up_to_step`: its evaluations so far replayed from eval/."""
    stopping = EarlyStopping(metric, patience, min_delta, minimise)
    if patience is not None and up_to_step > 0:
        for step, value in eval_history(eval_dir, metric, up_to_step):
            stopping.update(step, value)
    return stopping
