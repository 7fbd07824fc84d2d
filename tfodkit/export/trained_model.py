"""Load the model a pipeline.config describes with the weights of a checkpoint, for export."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from tfodkit.checkpoints.tf2_checkpoint import PARTS, VALUE_SUFFIX, load_tf2_checkpoint
from tfodkit.errors import TfodkitError
from tfodkit.model.builder import build_ssd
from tfodkit.model.ssd import SSD
from tfodkit.protos import pipeline_pb2
from tfodkit.training.checkpoints import (
    CHECKPOINT_PREFIX,
    TrainingCheckpoints,
    checkpoint_step,
    restore_for_evaluation,
    stored_step,
)
from tfodkit.training.optimizers import build_optimizer

MAX_LISTED = 5  # mismatched variables named in an error
# Where a training checkpoint keeps the trainable weights: the optimizer's list of them (first path found).
TRAINABLE_KEY = "optimizer/_trainable_variables/"


@dataclass(frozen=True)
class TrainedModel:
    """An SSD with a checkpoint's weights: the checkpoint's step (the N of ckpt-N) and its prefix."""

    model: SSD
    step: int
    prefix: str


def _existing(directory: Path) -> list[str]:
    """Names of the checkpoints in `directory` (ckpt-N), by N."""
    names = [path.name[: -len(".index")] for path in directory.glob("*.index")]
    number = re.compile(r"-(\d+)$")
    return sorted(names, key=lambda name: (int(match.group(1)) if (match := number.search(name)) else -1, name))


def checkpoint_prefix(checkpoint_dir: str | Path, checkpoint: str | None = None) -> str:
    """The checkpoint to export: `checkpoint` (a ckpt-N name inside `checkpoint_dir`, or a full prefix) or the
    latest one in `checkpoint_dir`."""
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        raise TfodkitError(f"--trained_checkpoint_dir {directory}: no such directory")
    existing = _existing(directory)
    if checkpoint is None:
        latest = tf.train.latest_checkpoint(str(directory))
        if latest is None:
            found = f" ({', '.join(existing)} found, but no `checkpoint` state file names one)" if existing else ""
            raise TfodkitError(
                f"--trained_checkpoint_dir {directory}: no checkpoint in this directory{found}; point it at the "
                f"--model_dir of `tfodkit train` (it holds {CHECKPOINT_PREFIX}-N.index files), or pick one with "
                "--checkpoint"
            )
        return latest
    named = "/" not in checkpoint and "\\" not in checkpoint
    prefix = str(directory / checkpoint) if named else checkpoint
    if not Path(prefix + ".index").is_file():
        available = ", ".join(existing) if existing else "none"
        raise TfodkitError(
            f"--checkpoint {checkpoint}: no such checkpoint ({prefix}.index not found); "
            f"checkpoints in {directory}: {available}"
        )
    return prefix


def _listing(lines: list[str]) -> str:
    shown = "\n".join(f"  {line}" for line in lines[:MAX_LISTED])
    more = len(lines) - MAX_LISTED
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _model_variable_shapes(prefix: str) -> dict[str, list[int]]:
    """Checkpoint key (without the /.ATTRIBUTES/VARIABLE_VALUE suffix) -> shape, for the model's variables: those
    under model/ and, in a training checkpoint, the trainable ones the optimizer lists (saved under its path)."""
    return {name.removesuffix(VALUE_SUFFIX): shape for name, shape in tf.train.list_variables(prefix)
            if name.startswith(("model/", TRAINABLE_KEY))}


def _key_order(key: str) -> tuple[int, str]:
    """Trainable weights first, in the model's order, then the other model/ variables by key."""
    if key.startswith(TRAINABLE_KEY):
        return int(key.removeprefix(TRAINABLE_KEY)), ""
    return 1 << 30, key


def _check_matches(prefix: str, model: SSD, optimizer: keras.optimizers.Optimizer | None) -> None:
    """Raise naming the first model variables whose keys or shapes differ between the checkpoint and `model`.

    The model's layout is read from a scratch checkpoint of it written the same way (as a training checkpoint
    when the checkpoint holds an optimizer, whose list of trainable variables then holds the weights)."""
    with tempfile.TemporaryDirectory() as scratch:
        if optimizer is None:
            written = tf.train.Checkpoint(model=model).write(str(Path(scratch) / "model"))
        else:
            written = TrainingCheckpoints(scratch, model, optimizer, tf.distribute.get_strategy()).save()
        expected = _model_variable_shapes(written)
    found = _model_variable_shapes(prefix)
    if not found:
        raise TfodkitError(f"{prefix}: neither a tfodkit training checkpoint nor an OD API TF2 checkpoint "
                           "(no model/ variables)")
    trainable = model.trainable_variables
    lines = []
    for key in sorted(set(expected) | set(found), key=_key_order):
        ours, theirs = expected.get(key), found.get(key)
        if ours == theirs:
            continue
        index = key.removeprefix(TRAINABLE_KEY)
        if key.startswith(TRAINABLE_KEY) and int(index) < len(trainable):
            key = f"{key} ({trainable[int(index)].path})"
        if ours is None:
            lines.append(f"{key}: checkpoint {theirs}, not in the model")
        elif theirs is None:
            lines.append(f"{key}: model {ours}, not in the checkpoint")
        else:
            lines.append(f"{key}: checkpoint {theirs}, model {ours}")
    if lines:
        raise TfodkitError(
            f"{prefix}: does not match the model of this pipeline.config (was it trained with another one?); "
            f"{len(lines)} mismatched variable(s), first:\n{_listing(lines)}"
        )


def _stored_names(prefix: str) -> list[str]:
    try:
        return [name for name, _ in tf.train.list_variables(prefix)]
    except (tf.errors.OpError, ValueError) as error:
        raise TfodkitError(f"{prefix}: cannot read the checkpoint: {error}") from None


def _load_od_api(prefix: str, model: SSD, config: pipeline_pb2.TrainEvalPipelineConfig) -> None:
    if config.eval_config.use_moving_averages:
        raise TfodkitError(
            f"eval_config.use_moving_averages: true, but {prefix} is an OD API TF2 checkpoint, which holds no "
            "moving averages; set it to false"
        )
    try:
        load_tf2_checkpoint(model, prefix)
    except TfodkitError as error:
        header, *lines = str(error).splitlines()
        listing = _listing([line.strip() for line in lines])
        raise TfodkitError(f"{header}; {len(lines)} mismatch(es), first:\n{listing}") from None


def _load_tfodkit(prefix: str, model: SSD, config: pipeline_pb2.TrainEvalPipelineConfig, names: list[str]) -> int:
    """Restore a tfodkit checkpoint: a training one (model, optimizer, step) or an exported one (model only).

    With eval_config.use_moving_averages, a training checkpoint's optimizer averages of the weights replace
    them, as evaluation swaps them in; an exported checkpoint already holds the weights that were exported."""
    optimizer = None
    if any(name.startswith("optimizer/") for name in names):
        optimizer = build_optimizer(config.train_config.optimizer)
        optimizer.build(model.trainable_variables)
    _check_matches(prefix, model, optimizer)
    if optimizer is None or not config.eval_config.use_moving_averages:
        return restore_for_evaluation(prefix, model)
    if not optimizer.use_ema:
        raise TfodkitError(
            "eval_config.use_moving_averages: true, but train_config.optimizer.use_moving_average is false, so "
            "the checkpoint holds no moving averages to export"
        )
    step = restore_for_evaluation(prefix, model, optimizer)
    optimizer.finalize_variable_values(model.trainable_variables)
    return step


def load_trained_model(
    config: pipeline_pb2.TrainEvalPipelineConfig, checkpoint_dir: str | Path, checkpoint: str | None = None
) -> TrainedModel:
    """Build the pipeline's SSD and restore a checkpoint into it: a tfodkit training checkpoint (`model/...`)
    or an OD API TF2 checkpoint (`model/_feature_extractor/...`); `checkpoint` as in checkpoint_prefix."""
    prefix = checkpoint_prefix(checkpoint_dir, checkpoint)
    names = _stored_names(prefix)
    model = build_ssd(config)
    if any(name.startswith(tuple(PARTS.values())) for name in names):
        _load_od_api(prefix, model, config)
        step = stored_step(prefix)  # the OD API's ckpt-N counts saves, not steps
        return TrainedModel(model, checkpoint_step(prefix) if step is None else step, prefix)
    return TrainedModel(model, _load_tfodkit(prefix, model, config, names), prefix)
