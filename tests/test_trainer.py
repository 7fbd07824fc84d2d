"""`tfodkit train` on a tiny demo set: a killed run resumes exactly, every TensorBoard tag is written, NaN stops."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import NUM_IMAGES
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfodkit import label_map
from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import SUMMARY_METRICS, per_class_tag
from tfodkit.evaluation.loss_gap import LOSS_GAPS, LOSS_TAGS, MAP_GAP
from tfodkit.evaluation.summaries import eval_image_tag
from tfodkit.training.trainer import TrainOptions, Trainer

# A tiny model so a step is cheap: most of each run is TensorFlow compiling the training step.
TINY = (
    "model.ssd.feature_extractor.depth_multiplier=0.35",
    "model.ssd.image_resizer.fixed_shape_resizer.height=96",
    "model.ssd.image_resizer.fixed_shape_resizer.width=96",
    "train_config.batch_size=2",
)


def _tags(directory: Path) -> tuple[set[str], set[str], dict[str, list[int]]]:
    """(scalar tags, image tags, steps of each scalar) of the event files in a directory, as TensorBoard reads them."""
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    # TF2 summaries are stored as tensors; TensorBoard's plugins classify them by their metadata.
    scalars, images, steps = set(), set(), {}
    for tag in tags["tensors"]:
        plugin = events.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            scalars.add(tag)
            steps[tag] = [event.step for event in events.Tensors(tag)]
        elif plugin == "images":
            images.add(tag)
    return scalars, images, steps


def _checkpoint_step(prefix: str) -> int:
    return int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def _wait_for_checkpoint(model_dir: Path, process: subprocess.Popen, log: Path, min_step: int) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        latest = tf.train.latest_checkpoint(str(model_dir))
        if latest and _checkpoint_step(latest) >= min_step:
            return latest
        if process.poll() is not None:
            pytest.fail(f"training exited early ({process.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"no checkpoint at step >= {min_step} within 300 s:\n{log.read_text()[-3000:]}")


def test_killed_run_resumes_then_a_nan_loss_stops_it(pipeline: Path, tmp_path: Path):
    """One scenario, since each run spends most of its time compiling: a run is killed with SIGKILL; the restart
    continues from the last checkpoint with the same step and optimizer state, checkpoints, evaluates (every
    TensorBoard tag is written), then meets an absurd learning rate and stops with the last good checkpoint."""
    model_dir, log = tmp_path / "run", tmp_path / "train.log"
    command = [sys.executable, "-m", "tfodkit.cli", "train", "--pipeline_config_path", str(pipeline),
               "--model_dir", str(model_dir), "--num_train_steps", "1000", "--checkpoint_every_n", "2",
               "--steps_per_call", "2", "--eval_every_n", "0", "--seed", "0", "--no_progress"]
    command += [arg for override in TINY for arg in ("--set", override)]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for_checkpoint(model_dir, process, log, min_step=4)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    # The state file names only complete checkpoints: the newest one it names restores.
    latest = tf.train.latest_checkpoint(str(model_dir))
    killed_at = _checkpoint_step(latest)
    assert killed_at >= 4 and killed_at % 2 == 0

    # The restart: a sane rate for two more steps (one checkpoint, one evaluation), then an absurd one.
    schedule = ("train_config.optimizer.momentum_optimizer.learning_rate={ manual_step_learning_rate { "
                f"initial_learning_rate: 0.001 schedule {{ step: {killed_at + 2} learning_rate: 1e30 }} }} }}")
    messages: list[str] = []
    trainer = Trainer(TrainOptions(str(pipeline), str(model_dir), TINY + (schedule,), num_train_steps=killed_at + 40,
                                   checkpoint_every_n=2, eval_every_n=2, steps_per_call=2, seed=0, progress=False),
                      report=messages.append)
    # Same step counter and optimizer state as the checkpoint holds.
    assert trainer.checkpoints.restore_latest() == killed_at
    assert int(trainer.optimizer.iterations.numpy()) == killed_at
    # optimizer.variables[0] is the step counter (saved once, as step/); the others are the momentum slots.
    slots = trainer.optimizer.variables[1:]
    for index, variable in enumerate(slots, start=1):
        saved = tf.train.load_variable(latest, f"optimizer/_variables/{index}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(variable.numpy(), saved)
    assert sum(float(np.abs(v.numpy()).sum()) for v in slots) > 0

    with pytest.raises(TfodkitError, match=r"training diverged in steps (\d+)\.\.(\d+): .* is intact") as caught:
        trainer.run()
    assert f"resuming from {latest} at step {killed_at}" in messages
    good = str(model_dir / f"ckpt-{killed_at + 2}")
    assert f"training diverged in steps {killed_at + 3}..{killed_at + 4}" in str(caught.value)
    assert f"{good} (step {killed_at + 2}) is intact" in str(caught.value)
    assert tf.train.latest_checkpoint(str(model_dir)) == good and _checkpoint_step(good) == killed_at + 2
    for name, _ in tf.train.list_variables(good):
        if name.startswith("model/"):
            assert np.all(np.isfinite(tf.train.load_variable(good, name))), name
    assert (model_dir / "pipeline.config").is_file()

    train_scalars, train_images, train_steps = _tags(model_dir / "train")
    assert set(LOSS_TAGS) | {"learning_rate", "steps_per_sec"} <= train_scalars
    assert "train_input_images" in train_images
    assert killed_at + 2 in train_steps["Loss/total_loss"]

    names = label_map.load(pipeline.parent / "records" / "label_map.pbtxt").ids
    eval_scalars, eval_images, eval_steps = _tags(model_dir / "eval")
    expected = set(SUMMARY_METRICS) | {per_class_tag(name) for name in names} | set(LOSS_TAGS)
    expected |= set(LOSS_GAPS) | {MAP_GAP}
    assert expected <= eval_scalars, sorted(expected - eval_scalars)
    assert {eval_image_tag(k) for k in range(NUM_IMAGES // 2)} <= eval_images
    assert eval_steps["DetectionBoxes_Precision/mAP@.50IOU"] == [killed_at + 2]
