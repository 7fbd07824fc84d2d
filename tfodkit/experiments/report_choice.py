"""The recommended run: highest mAP@0.5 at (b), near-ties broken by the smaller gap; every run's distance from it."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from tfodkit.experiments.report_table import RunRow


@dataclasses.dataclass(frozen=True)
class Choice:
    """The recommended row (None when no run has mAP@0.5 at (b)), the rule as a sentence, and per run name the
    differences from it at (b): mAP@0.5 and the gap the tie-break used."""

    row: RunRow | None
    rule: str
    gap_key: str  # "gap" or "od_api_style_gap": the gap the tie-break compares
    deltas: dict[str, tuple[float | None, float | None]]


def _gap_key(rows: Sequence[RunRow]) -> str:
    """tfodkit's gap when every row has it at (b), else the OD API-style gap (model_main_tf2 runs have no Gap/*)."""
    return "gap" if all(row.points["b"]["gap"] is not None for row in rows) else "od_api_style_gap"


def _difference(value: object, reference: object) -> float | None:
    return float(value) - float(reference) if value is not None and reference is not None else None


def recommend(rows: Sequence[RunRow], tolerance: float) -> Choice:
    """The run with the highest mAP@0.5 at (b); runs within `tolerance` of it are tied and the one with the
    smallest gap at (b) wins (then the first by name)."""
    candidates = [row for row in rows if "b" in row.points and row.points["b"]["map50"] is not None]
    if not candidates:
        return Choice(None, "no run has mAP@0.5 at an evaluation with an eval loss, so none is recommended",
                      "gap", {})
    top = max(float(row.points["b"]["map50"]) for row in candidates)
    tied = [row for row in candidates if top - float(row.points["b"]["map50"]) <= tolerance]
    gap_key = _gap_key(tied)
    gap_name = "gap (eval minus train loss, inference mode)" if gap_key == "gap" else "OD API-style gap"

    def order(row: RunRow) -> tuple[float, str]:
        gap = row.points["b"][gap_key]
        return (float(gap) if gap is not None else float("inf"), row.run.name)

    chosen = min(tied, key=order)
    rule = (f"highest mAP@0.5 at (b), where the eval loss stops falling; runs within {tolerance:g} of the highest "
            f"count as tied, and of those the one with the smallest {gap_name} at (b) is recommended")
    reference = chosen.points["b"]
    deltas = {row.run.name: (_difference(row.points["b"]["map50"], reference["map50"]),
                             _difference(row.points["b"][gap_key], reference[gap_key]))
              for row in candidates}
    return Choice(chosen, rule, gap_key, deltas)
