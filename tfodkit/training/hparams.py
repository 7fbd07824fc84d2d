"""Hyperparameters for TensorBoard's HParams dashboard: a run's values in MODEL_DIR, an experiment config at a root."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50
from tfodkit.evaluation.loss_gap import TOTAL_LOSS
from tfodkit.evaluation.summaries import EVAL_DIR, STEPS_PER_SEC, TRAIN_DIR
from tfodkit.protos import pipeline_optimizer_pb2, pipeline_pb2

# The metrics the dashboard shows, as (tag, group): the group is the run's subdirectory the tag is written in.
METRICS: tuple[tuple[str, str], ...] = (
    (MAP_50, EVAL_DIR),
    ("DetectionBoxes_Precision/mAP", EVAL_DIR),
    ("DetectionBoxes_Recall/AR@100", EVAL_DIR),
    (TOTAL_LOSS, EVAL_DIR),
    ("Gap/eval_minus_train_total_loss", EVAL_DIR),
    (TOTAL_LOSS, TRAIN_DIR),
    (STEPS_PER_SEC, TRAIN_DIR),
)
# Event file name endings, so that writing again replaces the previous file instead of adding a second one
# (TensorBoard would keep the first).
_RUN_SUFFIX = ".hparams.v2"
_CONFIG_SUFFIX = ".hparams_config.v2"


def _config_float(value: float) -> float:
    """A float field of the config as pipeline.config writes it (0.04, not float32's 0.03999999910593033)."""
    return float(f"{value:.7g}")


def _learning_rate_base(optimizer: pipeline_optimizer_pb2.Optimizer) -> float | None:
    """The schedule's base rate: learning_rate_base (cosine), learning_rate (constant), else initial_learning_rate;
    None when the config sets no optimizer or schedule."""
    kind = optimizer.WhichOneof("optimizer")
    rate = getattr(optimizer, kind).learning_rate if kind else None
    schedule = rate.WhichOneof("learning_rate") if rate is not None else None
    if schedule is None:
        return None
    if schedule == "cosine_decay_learning_rate":
        return rate.cosine_decay_learning_rate.learning_rate_base
    if schedule == "constant_learning_rate":
        return rate.constant_learning_rate.learning_rate
    return getattr(rate, schedule).initial_learning_rate


def run_hparams(config: pipeline_pb2.TrainEvalPipelineConfig, seed: int | None,
                extra: Mapping[str, object]) -> dict[str, object]:
    """A run's hyperparameters: model (feature extractor type), image_size ("HxW"), batch_size,
    learning_rate_base, classification_weight, localization_weight, num_steps from the config and the seed
    (learning_rate_base and seed left out when there is none), then `extra` added (or replacing those)."""
    ssd, train = config.model.ssd, config.train_config
    resizer = ssd.image_resizer.fixed_shape_resizer
    values: dict[str, object] = {
        "model": ssd.feature_extractor.type,
        "image_size": f"{resizer.height}x{resizer.width}",
        "batch_size": train.batch_size,
        "classification_weight": _config_float(ssd.loss.classification_weight),
        "localization_weight": _config_float(ssd.loss.localization_weight),
        "num_steps": train.num_steps,
    }
    learning_rate_base = _learning_rate_base(train.optimizer)
    if learning_rate_base is not None:
        values["learning_rate_base"] = _config_float(learning_rate_base)
    if seed is not None:
        values["seed"] = seed
    values.update(extra)
    return values


def parse_hparam(text: str) -> tuple[str, object]:
    """`--hparam NAME=VALUE` -> (NAME, VALUE), the value an int, a float, a bool (true/false) or else a string."""
    name, equals, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not name or not value:
        raise TfodkitError(f"--hparam {text!r}: expected NAME=VALUE, e.g. --hparam optimizer=adam")
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def _replace_event_file(directory: Path, suffix: str) -> tf.summary.SummaryWriter:
    """A writer of a fresh event file ending in `suffix` in `directory`, the previous such files deleted."""
    for old in directory.glob(f"events.out.tfevents.*{suffix}"):
        old.unlink()
    return tf.summary.create_file_writer(str(directory), filename_suffix=suffix)


def write_run_hparams(model_dir: Path, hparams: Mapping[str, object], trial_id: str) -> None:
    """hp.hparams (the run's values, session group `trial_id`) in an event file in MODEL_DIR itself."""
    writer = _replace_event_file(Path(model_dir), _RUN_SUFFIX)
    with writer.as_default():
        hp.hparams(dict(hparams), trial_id=trial_id)
    writer.close()


def _domain(values: list[object]) -> hp.Discrete | None:
    """A Discrete domain over the values seen: of their type (ints among floats count as floats), or None when
    they mix other types."""
    types = {type(value) for value in values}
    if types == {int, float}:
        return hp.Discrete(sorted({float(value) for value in values}), dtype=float)
    if len(types) != 1:
        return None
    return hp.Discrete(sorted(set(values)), dtype=types.pop())


def write_experiment_config(root: Path, runs: Sequence[Mapping[str, object]]) -> None:
    """hp.hparams_config at a sweep's root: one HParam per name any run has (a Discrete domain over the values
    seen), and METRICS with their groups. Writing it again replaces the previous one."""
    seen: dict[str, list[object]] = {}
    for run in runs:
        for name, value in run.items():
            seen.setdefault(name, []).append(value)
    hparams = [hp.HParam(name, _domain(values)) for name, values in seen.items()]
    metrics = [hp.Metric(tag, group=group, display_name=f"{tag} ({group})") for tag, group in METRICS]
    Path(root).mkdir(parents=True, exist_ok=True)
    writer = _replace_event_file(Path(root), _CONFIG_SUFFIX)
    with writer.as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()
