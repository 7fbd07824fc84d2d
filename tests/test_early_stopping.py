"""Early stopping decides as Keras' EarlyStopping does; its state is rebuilt from eval/ event files on resume."""

import random
import types
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from tfodkit.training.early_stopping import EarlyStopping, eval_history, resume

TAG = "Loss/total_loss"


def _keras_stop(values: list[float], patience: int, min_delta: float, minimise: bool) -> int | None:
    """The index of the value at which keras.callbacks.EarlyStopping stops training, or None."""
    callback = keras.callbacks.EarlyStopping(monitor="value", mode="min" if minimise else "max", patience=patience,
                                             min_delta=min_delta)
    model = types.SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"value": value})
        if model.stop_training:
            return epoch
    return None


def _our_stop(values: list[float], patience: int, min_delta: float, minimise: bool) -> int | None:
    stopping = EarlyStopping(TAG, patience, min_delta, minimise)
    for index, value in enumerate(values):
        if stopping.update(step=10 * (index + 1), value=value):
            assert stopping.stopped_at == 10 * (index + 1)
            return index
    return None


def test_stops_where_keras_early_stopping_stops():
    """Random curves (rising, falling, flat stretches, small steps near min_delta) against Keras' own callback."""
    rng = random.Random(7)
    stops = set()
    for _ in range(150):
        length = rng.randint(1, 12)
        # Values on a 0.1 grid: ties are common, and no change equals a min_delta (float32 vs float64 would decide)
        values = [round(rng.uniform(0, 1), 1) for _ in range(length)]
        patience, min_delta, minimise = rng.randint(1, 3), rng.choice([0.0, 0.05, 0.15, 0.25]), rng.random() < 0.5
        ours = _our_stop(values, patience, min_delta, minimise)
        assert ours == _keras_stop(values, patience, min_delta, minimise), (values, patience, min_delta, minimise)
        stops.add(ours)
    assert None in stops and len(stops) > 3  # the sequences exercised both outcomes at several positions


def test_min_delta_is_an_absolute_margin_and_the_best_follows_only_real_improvements():
    stopping = EarlyStopping("DetectionBoxes_Precision/mAP@.50IOU", patience=2, min_delta=0.01, minimise=False)
    assert not stopping.update(100, 0.50)
    assert not stopping.update(200, 0.505)  # better, but by less than min_delta: no improvement
    assert (stopping.best, stopping.best_step, stopping.wait) == (0.50, 100, 1)
    assert not stopping.update(300, 0.52)  # more than 0.01 above the best (0.50): an improvement
    assert (stopping.best, stopping.best_step, stopping.wait) == (0.52, 300, 0)
    assert not stopping.update(400, 0.529)
    assert stopping.update(500, 0.53)  # exactly min_delta is no improvement either
    assert stopping.stopped_at == 500 and stopping.wait == 2
    reason = stopping.reason()
    assert "did not improve by more than 0.01 for 2 evaluation(s)" in reason
    assert "best 0.52 at step 300" in reason and "stopped at step 500" in reason


def test_a_re_evaluated_step_counts_once_and_no_patience_never_stops():
    stopping = EarlyStopping(TAG, patience=1, min_delta=0.0, minimise=True)
    assert not stopping.update(10, 3.0)
    assert not stopping.update(10, 5.0)  # the same step again (a resumed run's final evaluation): ignored
    assert not stopping.update(5, 9.0)
    assert stopping.wait == 0 and stopping.reason() == ""
    assert stopping.update(20, 3.0)  # equal is no improvement
    never = EarlyStopping(TAG, patience=None, min_delta=0.0, minimise=True)
    assert not any(never.update(step, 1.0) for step in range(1, 50))
    assert never.best_step == 1 and never.wait == 48


def _write_scalars(directory: Path, values: dict[int, float], tag: str = TAG) -> Path:
    """One event file (TF2 scalar summaries) holding `values`; returns its path."""
    before = set(directory.glob("events.out.tfevents.*"))
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        for step, value in values.items():
            tf.summary.scalar(tag, value, step=step)
            tf.summary.scalar("DetectionBoxes_Precision/mAP", 1.0 - value, step=step)
    writer.close()
    (path,) = set(directory.glob("events.out.tfevents.*")) - before
    return path


def test_history_from_event_files_takes_the_last_value_of_each_step_up_to_the_resume_step(tmp_path: Path):
    """A first attempt evaluated steps 2, 4, 6 and was killed before its step-6 checkpoint; the resumed attempt
    (from step 4) evaluated 6 again with other values, then 8, and was killed mid-record."""
    first = _write_scalars(tmp_path, {2: 5.0, 4: 4.0, 6: 3.75})
    second = _write_scalars(tmp_path, {6: 4.5, 8: 4.25})
    assert sorted(tmp_path.glob("events.out.tfevents.*")) == sorted([first, second])  # names order them in time
    with second.open("r+b") as handle:  # a writer killed mid-record leaves a truncated last record
        handle.truncate(second.stat().st_size - 7)
    # The cut record is the last one, step 8's mAP: every value before it is read.
    assert eval_history(tmp_path, TAG, up_to_step=8) == [(2, 5.0), (4, 4.0), (6, 4.5), (8, 4.25)]
    assert eval_history(tmp_path, "DetectionBoxes_Precision/mAP", up_to_step=8) == [(2, -4.0), (4, -3.0), (6, -3.5)]
    assert eval_history(tmp_path, TAG, up_to_step=4) == [(2, 5.0), (4, 4.0)]
    assert eval_history(tmp_path, "Loss/other", up_to_step=8) == []

    state = resume(tmp_path, TAG, patience=1, min_delta=0.0, minimise=True, up_to_step=6)
    assert (state.best, state.best_step, state.wait, state.stopped_at) == (4.0, 4, 1, 6)
    assert not resume(tmp_path, TAG, patience=2, min_delta=0.0, minimise=True, up_to_step=6).stopped
    off = resume(tmp_path, TAG, patience=None, min_delta=0.0, minimise=True, up_to_step=6)
    assert off.best is None  # early stopping off: nothing is read


@pytest.mark.parametrize("up_to_step", [0, 1])
def test_a_fresh_run_starts_with_no_history(tmp_path: Path, up_to_step: int):
    _write_scalars(tmp_path, {2: 1.0})
    state = resume(tmp_path, TAG, patience=3, min_delta=0.0, minimise=True, up_to_step=up_to_step)
    assert state.best is None and state.last_step is None
