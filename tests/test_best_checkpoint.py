"""MODEL_DIR/best/, early stopping and run_summary.json in real `tfodkit train` runs, resumed; best/'s mechanics."""

import contextlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_hparams import hparams_plugin_data, python_value, tensorboard_experiment
from test_trainer import TINY

from tfodkit import cli, label_map
from tfodkit.evaluation import summaries
from tfodkit.evaluation.coco_metrics import MAP_50, per_class_tag
from tfodkit.evaluation.loss_gap import TOTAL_LOSS
from tfodkit.training import early_stopping, run_summary
from tfodkit.training.best_checkpoint import BEST_DIR, BEST_FILE, BestCheckpoint, read
from tfodkit.training.trainer import TrainOptions, train

STALL_AT = 4  # the learning rate is 0 from this step on
NUM_STEPS, PATIENCE, EVAL_EVERY = 40, 2, 2
# Deterministic "improves, then stalls": plain SGD (no momentum to carry the weights on) with frozen batch norms
# (no moving statistics updated by training-mode passes), so from STALL_AT on every evaluation gives the same
# values. Checkpoints only every 100 steps, so the ones at evaluation steps are saved for best/; one kept.
SETUP = TINY + (
    "model.ssd.freeze_batchnorm=true",
    "train_config.optimizer.momentum_optimizer.momentum_optimizer_value=0",
    "train_config.optimizer.momentum_optimizer.learning_rate={ manual_step_learning_rate { "
    f"initial_learning_rate: 0.05 schedule {{ step: {STALL_AT} learning_rate: 0 }} }} }}",
)
FLAGS = ["--checkpoint_every_n", "100", "--eval_every_n", str(EVAL_EVERY), "--steps_per_call", "2",
         "--max_to_keep", "1", "--seed", "0", "--no_progress", "--best-metric", TOTAL_LOSS,
         "--early-stop-patience", str(PATIENCE), "--hparam", "sweep_axis=0.5"]


def _scalars(directory: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    return {event.step: float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors(tag)}


def _text(directory: Path, tag: str) -> dict[int, str]:
    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    return {event.step: tf.make_ndarray(event.tensor_proto).item().decode() for event in events.Tensors(tag)}


def _step(prefix: str) -> int:
    return int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.fixture(scope="module")
def runs(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run trained to step 6 (evaluations at 2, 4, 6), then resumed by `tfodkit train` for up to 40 steps with
    patience 2: the evaluation at 8 is the second in a row without improvement, so it stops there."""
    model_dir = tmp_path_factory.mktemp("best") / "run"
    lines: list[str] = []
    first = train(TrainOptions(str(pipeline), str(model_dir), SETUP, num_train_steps=6, checkpoint_every_n=100,
                               eval_every_n=EVAL_EVERY, steps_per_call=2, max_to_keep=1, seed=0, progress=False,
                               best_metric=TOTAL_LOSS, early_stop_patience=PATIENCE), report=lines.append)
    after_first = {
        "best": read(model_dir), "summary": run_summary.read(model_dir),
        "checkpoints": sorted(path.name for path in model_dir.glob("ckpt-*.index")),
        "hparams": hparams_plugin_data(model_dir),
    }
    command = ["train", "--pipeline_config_path", str(pipeline), "--model_dir", str(model_dir),
               "--num_train_steps", str(NUM_STEPS), *FLAGS, *[arg for item in SETUP for arg in ("--set", item)]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(command)
    return {"model_dir": model_dir, "first": first, "lines": lines, "after_first": after_first, "status": status,
            "output": out.getvalue()}


def test_best_holds_the_checkpoint_of_the_best_evaluation(runs):
    model_dir = runs["model_dir"]
    losses = _scalars(model_dir / "eval", TOTAL_LOSS)
    # The setup did what it is for: the eval loss fell from 2 to 4, then stayed; no evaluation after the stop.
    assert sorted(losses) == [2, 4, 6, 8]
    assert losses[4] < losses[2] and losses[6] == losses[4] == losses[8]
    best_step = min(losses, key=lambda step: (losses[step], step))
    assert best_step == STALL_AT

    best = json.loads((model_dir / BEST_DIR / BEST_FILE).read_text())
    assert best == {"step": best_step, "metric": TOTAL_LOSS, "value": losses[best_step],
                    "checkpoint": f"ckpt-{best_step}"}
    prefix = tf.train.latest_checkpoint(str(model_dir / BEST_DIR))
    assert prefix == str(model_dir / BEST_DIR / f"ckpt-{best_step}") and _step(prefix) == best_step
    # The checkpoints at the evaluation steps were saved for best/ (none was due before step 100) and pruned
    # from MODEL_DIR by --max_to_keep 1; best/ keeps its copy.
    assert runs["after_first"]["checkpoints"] == ["ckpt-6.index"]
    assert sorted(path.name for path in model_dir.glob("ckpt-*.index")) == ["ckpt-8.index"]
    assert [line for line in runs["lines"] if line.startswith("best ")] == [
        f"best {TOTAL_LOSS} so far: {losses[step]:.4f} at step {step}, kept in {model_dir / BEST_DIR}"
        for step in (2, 4)]
    final = str(model_dir / "ckpt-8")
    for name, _ in tf.train.list_variables(final):  # no learning after step 4: the same weights
        if name.startswith("model/"):
            np.testing.assert_array_equal(tf.train.load_variable(prefix, name), tf.train.load_variable(final, name))


def test_early_stopping_ends_the_resumed_run_cleanly_and_says_why(runs):
    model_dir, output = runs["model_dir"], runs["output"]
    assert runs["status"] == 0, output
    first = runs["after_first"]["summary"]
    assert (first.final_step, first.num_steps, first.stopped_early, first.stop_reason) == (6, 6, False,
                                                                                          "trained to step 6")
    assert (first.best_step, first.best_metric) == (STALL_AT, TOTAL_LOSS)
    assert first.steps_per_sec > 0 and first.wall_seconds > 0
    assert runs["first"].summary == first

    summary = run_summary.read(model_dir)
    reason = (f"{TOTAL_LOSS} did not improve by more than 0 for {PATIENCE} evaluation(s) "
              f"(best {summary.best_value:.6g} at step {STALL_AT}); stopped at step 8")
    assert (summary.final_step, summary.num_steps, summary.stopped_early, summary.stop_reason) == (8, NUM_STEPS,
                                                                                                  True, reason)
    assert (summary.best_step, summary.best_value) == (STALL_AT, read(model_dir).value)
    assert math.isnan(summary.steps_per_sec)  # its one call (steps 7-8) compiled, so nothing was timed
    assert f"resuming from {model_dir / 'ckpt-6'} at step 6" in output
    assert f"stopped early at step 8 of {NUM_STEPS}: {reason}" in output
    assert f"best checkpoint: {model_dir / BEST_DIR} (step {STALL_AT}, {TOTAL_LOSS} {summary.best_value:.4f})" in output
    assert tf.train.latest_checkpoint(str(model_dir)) == str(model_dir / "ckpt-8")  # the final checkpoint
    assert _scalars(model_dir / "train", summaries.EARLY_STOP_STEP) == {8: 8.0}
    assert _text(model_dir / "train", summaries.EARLY_STOP_REASON) == {8: reason}
    # Started again, the run would stop at once: its state, rebuilt from the events, has stopped.
    again = early_stopping.resume(model_dir / "eval", TOTAL_LOSS, PATIENCE, 0.0, True, up_to_step=8)
    assert (again.stopped_at, again.best_step, again.wait) == (8, STALL_AT, PATIENCE)


def test_the_run_records_its_hparams_in_model_dir_itself(runs):
    model_dir = runs["model_dir"]
    (first,) = runs["after_first"]["hparams"]
    assert python_value(first.session_start_info.hparams["num_steps"]) == 6.0
    assert "sweep_axis" not in first.session_start_info.hparams
    (data,) = hparams_plugin_data(model_dir)  # the resumed run replaced them
    start = data.session_start_info
    values = {name: python_value(value) for name, value in start.hparams.items()}
    assert start.group_name == model_dir.name
    assert values == {"model": "ssd_mobilenet_v2_keras", "image_size": "96x96", "batch_size": 2.0,
                      "learning_rate_base": 0.05, "classification_weight": 1.0, "localization_weight": 1.0,
                      "num_steps": float(NUM_STEPS), "seed": 0.0, "sweep_axis": 0.5}
    assert hparams_plugin_data(model_dir / "train") == [] and hparams_plugin_data(model_dir / "eval") == []
    # `tensorboard --logdir` a folder of runs: the dashboard lists these values and the run's scalars as metrics by
    # group (TensorBoard finds a session's metric groups only below it, so not with --logdir MODEL_DIR itself).
    experiment = tensorboard_experiment(model_dir.parent)
    assert {info.name for info in experiment.hparam_infos} == set(values)
    metrics = {(info.name.group, info.name.tag) for info in experiment.metric_infos}
    assert {("eval", MAP_50), ("eval", TOTAL_LOSS), ("train", TOTAL_LOSS), ("train", "steps_per_sec")} <= metrics


@pytest.mark.parametrize("flags, message", [
    (["--best-metric", "mAP@0.5"], "--best-metric mAP@0.5: not a tag evaluation writes; use one of: "),
    (["--best-metric", "Gap/eval_minus_train_total_loss"], "--best-metric Gap/eval_minus_train_total_loss: not a"),
    (["--early-stop-patience", "0"], "--early-stop-patience: must be at least 1, got 0"),
    (["--early-stop-patience", "3", "--eval_every_n", "0"], "--early-stop-patience: needs periodic evaluations"),
    (["--early-stop-min-delta", "-0.1"], "--early-stop-min-delta: must be 0 or more, got -0.1"),
    (["--hparam", "lr"], "--hparam 'lr': expected NAME=VALUE"),
])
def test_bad_flags_are_refused_before_training_starts(pipeline: Path, tmp_path: Path, capsys, flags, message):
    model_dir = tmp_path / "run"
    status = cli.main(["train", "--pipeline_config_path", str(pipeline), "--model_dir", str(model_dir), *flags])
    error = capsys.readouterr().err
    assert status == 1 and f"tfodkit train: error: {message}" in error
    assert not model_dir.exists()
    if flags[1] == "mAP@0.5":
        names = label_map.load(pipeline.parent / "records" / "label_map.pbtxt").ids
        for tag in (MAP_50, "DetectionBoxes_Recall/AR@100", TOTAL_LOSS, *(per_class_tag(name) for name in names)):
            assert tag in error


def _fake_checkpoint(model_dir: Path, step: int) -> str:
    """Files named as a checkpoint's, each holding its own name (best/'s mechanics do not read them)."""
    prefix = model_dir / f"ckpt-{step}"
    for suffix in (".index", ".data-00000-of-00001"):
        Path(str(prefix) + suffix).write_text(f"{prefix.name}{suffix}")
    return str(prefix)


def test_best_is_replaced_only_by_a_strictly_better_value_and_outlives_pruning(tmp_path: Path):
    best = BestCheckpoint(tmp_path, MAP_50, writes=True, report=print)
    assert best.improves(-1.0)  # nothing yet: anything is the best
    best.keep(3, 0.5, _fake_checkpoint(tmp_path, 3))
    assert not best.improves(0.5) and not best.improves(0.4) and best.improves(0.51)
    best.keep(5, 0.6, _fake_checkpoint(tmp_path, 5))
    for path in tmp_path.glob("ckpt-5.*"):  # MODEL_DIR's copy pruned by max_to_keep
        os.remove(path)
    directory = tmp_path / BEST_DIR
    assert sorted(path.name for path in directory.iterdir()) == [
        "best.json", "checkpoint", "ckpt-5.data-00000-of-00001", "ckpt-5.index"]
    assert (directory / "ckpt-5.index").read_text() == "ckpt-5.index"
    assert tf.train.latest_checkpoint(str(directory)) == str(directory / "ckpt-5")
    assert json.loads((directory / BEST_FILE).read_text()) == {"step": 5, "metric": MAP_50, "value": 0.6,
                                                               "checkpoint": "ckpt-5"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best", "ckpt-3.data-00000-of-00001",
                                                                "ckpt-3.index"]  # no temporary left
    loss = BestCheckpoint(tmp_path / "loss", TOTAL_LOSS, writes=False, report=print)
    loss.keep(1, 2.0, str(tmp_path / "loss" / "ckpt-1"))
    assert loss.improves(1.9) and not loss.improves(2.0)  # lower is better for a loss
    assert not (tmp_path / "loss").exists()  # a worker other than the chief writes nothing


def test_a_run_killed_while_replacing_best_resumes_with_the_previous_one(tmp_path: Path):
    BestCheckpoint(tmp_path, MAP_50, writes=True, report=print).keep(3, 0.5, _fake_checkpoint(tmp_path, 3))
    # Killed between the renames: the old best/ moved aside, the new one not yet in place.
    (tmp_path / BEST_DIR).rename(tmp_path / ".best-previous")
    (tmp_path / ".best-new-x1").mkdir()
    assert read(tmp_path).step == 3  # readers find it aside
    messages: list[str] = []
    resumed = BestCheckpoint(tmp_path, MAP_50, writes=True, report=messages.append)
    assert resumed.best.step == 3 and not resumed.improves(0.5) and messages == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best", "ckpt-3.data-00000-of-00001",
                                                                "ckpt-3.index"]
    other = BestCheckpoint(tmp_path, TOTAL_LOSS, writes=True, report=messages.append)
    assert other.best is None and other.improves(1e9)
    assert messages == [f"{tmp_path / BEST_DIR} holds the best checkpoint by {MAP_50}; from the next evaluation "
                        f"on it follows {TOTAL_LOSS}"]
