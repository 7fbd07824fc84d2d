"""Scalar curves read back from TensorBoard event files (train/ and eval/), every value kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from tfodkit.evaluation.summaries import EVAL_DIR, TRAIN_DIR

# 0 = keep every event: the accumulator's defaults sample (10 tensors, 1000 scalars per tag). Images are tensors
# too in TF2 event files, so they are kept as well; the legacy image / audio / histogram kinds are not needed.
SIZE_GUIDANCE = {
    event_accumulator.TENSORS: 0,
    event_accumulator.SCALARS: 0,
    event_accumulator.IMAGES: 1,
    event_accumulator.AUDIO: 1,
    event_accumulator.HISTOGRAMS: 1,
    event_accumulator.COMPRESSED_HISTOGRAMS: 1,
}
SCALARS_PLUGIN = "scalars"


@dataclasses.dataclass(frozen=True)
class Point:
    """One logged value: its step, value and wall time (seconds since the epoch)."""

    step: int
    value: float
    wall_time: float


Curves = dict[str, list[Point]]  # tag -> points in step order, one per step


@dataclasses.dataclass(frozen=True)
class RunEvents:
    """The scalar curves of a run's train/ and eval/ directories, and when its first event was written."""

    train: Curves
    eval: Curves
    start_wall_time: float | None  # the earliest event of either directory; None without event files


def _by_step(points: list[Point]) -> list[Point]:
    """One point per step, the last written (a re-evaluation of a step replaces the earlier one), by step."""
    return sorted({point.step: point for point in points}.values(), key=lambda point: point.step)


def read_curves(directory: Path) -> tuple[Curves, float | None]:
    """Every scalar of the event files in `directory`: TF2 tensor summaries of the scalars plugin (what
    tf.summary.scalar writes) and TF1 simple_value scalars; and the wall time of the first event."""
    if not directory.is_dir() or not any(directory.glob("*tfevents*")):
        return {}, None
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance=SIZE_GUIDANCE)
    accumulator.Reload()
    tags = accumulator.Tags()
    curves: Curves = {}
    for tag in tags[event_accumulator.TENSORS]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != SCALARS_PLUGIN:
            continue
        curves[tag] = [Point(event.step, float(tensor_util.make_ndarray(event.tensor_proto)), event.wall_time)
                       for event in accumulator.Tensors(tag)]
    for tag in tags[event_accumulator.SCALARS]:
        curves.setdefault(tag, []).extend(
            Point(event.step, float(event.value), event.wall_time) for event in accumulator.Scalars(tag))
    try:
        start = accumulator.FirstEventTimestamp()
    except ValueError:  # no event at all in the files
        start = None
    return {tag: _by_step(points) for tag, points in curves.items()}, start


def read_run_events(run_dir: Path) -> RunEvents:
    """The curves of `run_dir`/train and `run_dir`/eval (empty where a directory or its events are missing)."""
    train, train_start = read_curves(run_dir / TRAIN_DIR)
    evaluation, eval_start = read_curves(run_dir / EVAL_DIR)
    starts = [start for start in (train_start, eval_start) if start is not None]
    return RunEvents(train=train, eval=evaluation, start_wall_time=min(starts) if starts else None)
