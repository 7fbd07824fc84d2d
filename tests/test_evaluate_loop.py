"""Periodic evaluation: overfitting shows as a growing eval-minus-train gap; checkpoints re-evaluate identically."""

from pathlib import Path

import pytest
import tensorflow as tf
from overfit_run import NUM_STEPS, OVERRIDES, demo_pipeline
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfodkit import cli
from tfodkit.evaluation.coco_metrics import MAP_50
from tfodkit.evaluation.loss_gap import LOSS_GAPS, MAP_GAP, TOTAL_LOSS
from tfodkit.training.trainer import TrainOptions, TrainResult, train

EVAL_EVERY = 30


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult, list[str]]:
    """(pipeline.config, result, log lines) of a 90-step run on 8 images, evaluated every 30 steps on 8 others."""
    root = tmp_path_factory.mktemp("overfit")
    path = demo_pipeline(root, {"train": 0.5, "val": 0.5})
    lines: list[str] = []
    result = train(TrainOptions(str(path), str(root / "run"), OVERRIDES, num_train_steps=NUM_STEPS,
                                checkpoint_every_n=EVAL_EVERY, eval_every_n=EVAL_EVERY, steps_per_call=10, seed=0,
                                progress=False), report=lines.append)
    return path, result, lines


def _scalars(directory: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    return {event.step: float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors(tag)}


@pytest.mark.slow
def test_overfitting_shows_as_a_positive_growing_gap(overfit_run):
    _, result, lines = overfit_run
    eval_dir = result.model_dir / "eval"
    gap = _scalars(eval_dir, "Gap/eval_minus_train_total_loss")
    assert sorted(gap) == [30, 60, 90]
    assert all(value > 0 for value in gap.values()), gap
    assert gap[30] < gap[60] < gap[90] and gap[90] - gap[30] > 1.0, gap
    # The gap is exactly the difference of the two inference-mode loss means of the same evaluation.
    final = result.evaluation
    assert final.gaps[LOSS_GAPS[-1]] == pytest.approx(final.losses[TOTAL_LOSS] - final.train_losses[TOTAL_LOSS])
    assert gap[90] == pytest.approx(final.gaps["Gap/eval_minus_train_total_loss"], rel=1e-6)
    # The memorised training images are detected far better than the unseen ones.
    assert final.train_map_50 > final.map_50 + 0.5
    assert _scalars(eval_dir, MAP_GAP)[90] == pytest.approx(final.train_map_50 - final.map_50, rel=1e-6)
    assert [line.split(":")[0] for line in lines if "mAP@0.5" in line] == ["step 30", "step 60", "step 90"]


@pytest.mark.slow
def test_evaluate_command_reproduces_the_last_in_process_evaluation(overfit_run, tmp_path: Path, capsys):
    pipeline, result, _ = overfit_run
    overrides = [arg for override in OVERRIDES for arg in ("--set", override)]
    assert cli.main(["evaluate", "--pipeline_config_path", str(pipeline), "--checkpoint_dir", str(result.model_dir),
                     "--model_dir", str(tmp_path), *overrides]) == 0
    printed = dict(line.rsplit(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    final = result.evaluation
    assert float(printed[MAP_50]) == pytest.approx(final.map_50, abs=1e-4)
    assert float(printed[TOTAL_LOSS]) == pytest.approx(final.losses[TOTAL_LOSS], abs=1e-4)
    assert _scalars(tmp_path / "eval", MAP_50) == {NUM_STEPS: pytest.approx(final.map_50, abs=1e-6)}
