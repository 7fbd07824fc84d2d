"""Where a curve of evaluations plateaus: the evaluation Keras EarlyStopping would restore when it stops."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from tfodkit.training.early_stopping import EarlyStopping

# Defaults of the report's two rules (docs/report.md says why): mAP@0.5 must gain more than one point, the eval
# loss fall by more than 0.01, within 3 evaluations, or the curve has plateaued.
MAP_MIN_DELTA = 0.01
MAP_PATIENCE = 3
LOSS_MIN_DELTA = 0.01
LOSS_PATIENCE = 3


@dataclasses.dataclass(frozen=True)
class Rule:
    """Keras EarlyStopping's min_delta (absolute) and patience (evaluations), and which way is better."""

    min_delta: float
    patience: int
    minimise: bool

    def describe(self) -> str:
        """The rule in one sentence."""
        change = "lower" if self.minimise else "raise"
        return (f"the best evaluation before {self.patience} evaluation(s) in a row fail to {change} the best value by "
                f"more than {self.min_delta:g} (Keras EarlyStopping: min_delta={self.min_delta:g}, "
                f"patience={self.patience}); the last evaluation when that never happens")


@dataclasses.dataclass(frozen=True)
class Plateau:
    """The point a rule picks on a curve: the best evaluation up to where EarlyStopping stops, or the last
    evaluation when it would not stop (`plateaued` false: still improving, or not for long enough)."""

    step: int
    plateaued: bool
    stopped_at: int | None  # the evaluation step where EarlyStopping would stop; None when it would not


def find_plateau(steps: Sequence[int], values: Sequence[float], rule: Rule) -> Plateau:
    """Run EarlyStopping over the evaluations (steps ascending, one value each) and return its point."""
    if not steps or len(steps) != len(values):
        raise ValueError(f"need one value per step and at least one evaluation, got {len(steps)} steps and "
                         f"{len(values)} values")
    if rule.patience < 1 or rule.min_delta < 0:
        raise ValueError(f"patience must be >= 1 and min_delta >= 0, got {rule.patience} and {rule.min_delta}")
    stopping = EarlyStopping("curve", rule.patience, rule.min_delta, rule.minimise)
    for step, value in zip(steps, values):
        if stopping.update(step, value):
            return Plateau(step=int(stopping.best_step), plateaued=True, stopped_at=stopping.stopped_at)
    return Plateau(step=int(steps[-1]), plateaued=False, stopped_at=None)
