"""Training checkpoints in MODEL_DIR (ckpt-<step>, as the OD API names them): model, optimizer and step."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from tfodkit.errors import TfodkitError

CHECKPOINT_PREFIX = "ckpt"
DEFAULT_MAX_TO_KEEP = 5  # the OD API's model_lib_v2 default for checkpoint_max_to_keep


def _worker_is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one worker that writes checkpoints to MODEL_DIR (always true on a single machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in ("chief", None):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


class TrainingCheckpoints:
    """Saves and restores (model, optimizer, step) every N steps, keeping the last `max_to_keep`.

    Writes are atomic: TensorFlow writes a checkpoint's data and index files first and only then rewrites
    the `checkpoint` state file (by an atomic rename), so a run killed mid-save still resumes from the
    previous complete checkpoint. Under MultiWorkerMirroredStrategy every worker must take part in a save;
    only the chief's lands in MODEL_DIR, the others write to a scratch folder deleted right after.
    """

    def __init__(
        self,
        model_dir: str | Path,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        max_to_keep: int = DEFAULT_MAX_TO_KEEP,
    ) -> None:
        if max_to_keep < 1:
            raise TfodkitError(f"--max_to_keep: must be at least 1, got {max_to_keep}")
        self.model_dir = Path(model_dir)
        self.is_chief = _worker_is_chief(strategy)
        directory = self.model_dir
        if not self.is_chief:
            resolver = strategy.cluster_resolver
            directory = self.model_dir / f"workertemp_{resolver.task_type}_{resolver.task_id}"
        self._directory = directory
        self.step = optimizer.iterations
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, str(directory), max_to_keep=max_to_keep, checkpoint_name=CHECKPOINT_PREFIX
        )

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The manager that writes this worker's checkpoints (for TensorFlow's PreemptionCheckpointHandler)."""
        return self._manager

    @property
    def latest(self) -> str | None:
        """Prefix of the newest complete checkpoint in MODEL_DIR, or None."""
        return tf.train.latest_checkpoint(str(self.model_dir))

    def restore_latest(self) -> int | None:
        """Restore the newest checkpoint (every saved value must find its variable); its step, or None when
        MODEL_DIR holds no checkpoint yet."""
        latest = self.latest
        if latest is None:
            return None
        try:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise TfodkitError(
                f"{latest}: cannot resume from this checkpoint (was MODEL_DIR written for another "
                f"pipeline.config?): {error}"
            ) from None
        return int(self.step.numpy())

    def save(self) -> str:
        """Write ckpt-<step>; returns the prefix written in MODEL_DIR."""
        path = self._manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.is_chief:
            shutil.rmtree(self._directory, ignore_errors=True)
            return os.path.join(str(self.model_dir), os.path.basename(path))
        return path


STEP_VARIABLE = "step/.ATTRIBUTES/VARIABLE_VALUE"  # the global step in tfodkit's and the OD API's checkpoints


def checkpoint_step(prefix: str) -> int:
    """The step number of a ckpt-<step> prefix."""
    try:
        return int(prefix.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise TfodkitError(f"{prefix}: not a checkpoint prefix of the form ckpt-<step>") from None


def stored_step(prefix: str) -> int | None:
    """The global step a training checkpoint stores (its `step` variable), None when it stores none. The OD API
    numbers its ckpt-N by save, not by step, so its step can only be read this way."""
    try:
        return int(tf.train.load_variable(prefix, STEP_VARIABLE))
    except (tf.errors.OpError, ValueError):
        return None


def restore_for_evaluation(
    prefix: str, model: keras.Model, optimizer: keras.optimizers.Optimizer | None = None
) -> int:
    """Load the model's weights (and the optimizer's, for its moving averages, when given; it must be built)
    from a training checkpoint; returns the checkpoint's step."""
    try:
        reader_keys = {name for name, _ in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as error:
        raise TfodkitError(f"{prefix}: cannot read the checkpoint: {error}") from None
    if not any(key.startswith("model/") for key in reader_keys):
        raise TfodkitError(f"{prefix}: not a tfodkit training checkpoint (no model/ variables)")
    parts = {"model": model} if optimizer is None else {"model": model, "optimizer": optimizer}
    status = tf.train.Checkpoint(**parts).restore(prefix)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise TfodkitError(f"{prefix}: does not match the model of this pipeline.config: {error}") from None
    status.expect_partial()
    return checkpoint_step(prefix)

