"""The step of a checkpoint: from its ckpt-<N> name (tfodkit numbers by step) or from the step it stores (the
OD API numbers its checkpoints by save)."""

from pathlib import Path

import pytest
import tensorflow as tf

from tfodkit.errors import TfodkitError
from tfodkit.training.checkpoints import checkpoint_step, stored_step

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "od_api_tf2"


def test_a_checkpoint_numbered_by_save_gives_its_stored_step(tmp_path: Path) -> None:
    step = tf.Variable(1500, dtype=tf.int64)
    prefix = tf.train.Checkpoint(step=step, weights=tf.Variable([1.0, 2.0])).save(str(tmp_path / "ckpt"))
    assert Path(prefix).name == "ckpt-1"  # as model_lib_v2's CheckpointManager names them
    assert checkpoint_step(prefix) == 1
    assert stored_step(prefix) == 1500


def test_a_checkpoint_without_a_step_stores_none(tmp_path: Path) -> None:
    prefix = tf.train.Checkpoint(weights=tf.Variable([1.0])).save(str(tmp_path / "ckpt"))
    assert stored_step(prefix) is None
    assert stored_step(str(tmp_path / "missing-3")) is None


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs ../shared/reference")
def test_the_od_api_exported_checkpoint_stores_no_step() -> None:
    prefix = REFERENCE / "ssd_mobilenet_v2_320x320_coco17_tpu-8" / "checkpoint" / "ckpt-0"
    assert stored_step(str(prefix)) is None
    assert checkpoint_step(str(prefix)) == 0


def test_a_prefix_without_a_number_is_refused() -> None:
    with pytest.raises(TfodkitError, match="not a checkpoint prefix"):
        checkpoint_step("/runs/demo/best")
