"""Fill a pipeline template with a dataset: class count, TFRecord paths, batch size and learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass

from tfodkit import label_map as label_map_module
from tfodkit.config.loader import check_pipeline, parse_pipeline_text
from tfodkit.config.overrides import apply_overrides
from tfodkit.config.paths import PathReference, is_keras_weights_file
from tfodkit.config.registry import CHECKPOINT_TYPES
from tfodkit.config.templates import template_text
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_optimizer_pb2, pipeline_pb2, pipeline_train_pb2

# Warmup lasts this fraction of training.
WARMUP_FRACTION = 1 / 20


@dataclass(frozen=True)
class PipelineChoices:
    """What the user chose for a new pipeline; None keeps the template's value."""

    model: str
    label_map: str
    train: str
    val: str
    batch_size: int | None = None
    learning_rate: float | None = None
    num_steps: int | None = None
    fine_tune_checkpoint: str | None = None
    fine_tune_checkpoint_type: str = "classification"
    overrides: tuple[str, ...] = ()  # `--set FIELD=VALUE` texts, applied last (e.g. inspect-anchors' suggestion)


def _existing(reference: PathReference, flag: str) -> None:
    if reference.matches():
        return
    what = "no files match this pattern" if reference.kind == "glob" else "no such file"
    if reference.kind == "checkpoint" and not is_keras_weights_file(reference.value):
        what = f"no checkpoint here (expected {reference.value}.index)"
    raise TfodkitError(f"{flag} {reference.value}: {what}")


def cosine_schedule(config: pipeline_pb2.TrainEvalPipelineConfig) -> pipeline_optimizer_pb2.CosineDecayLearningRate:
    """The cosine learning-rate schedule every template uses, whichever optimizer holds it."""
    optimizer = config.train_config.optimizer
    return getattr(optimizer, optimizer.WhichOneof("optimizer")).learning_rate.cosine_decay_learning_rate


def _schedule(config: pipeline_pb2.TrainEvalPipelineConfig, choices: PipelineChoices) -> None:
    train = config.train_config
    cosine = cosine_schedule(config)
    template_batch = train.batch_size
    batch_size = template_batch if choices.batch_size is None else choices.batch_size
    if batch_size < 1:
        raise TfodkitError(f"--batch-size {batch_size}: must be at least 1")
    if choices.learning_rate is not None and choices.learning_rate <= 0:
        raise TfodkitError(f"--learning-rate {choices.learning_rate}: must be positive")
    base = choices.learning_rate
    if base is None:
        base = cosine.learning_rate_base * batch_size / template_batch
    warmup_ratio = cosine.warmup_learning_rate / cosine.learning_rate_base
    num_steps = train.num_steps if choices.num_steps is None else choices.num_steps
    if num_steps < 1:
        raise TfodkitError(f"--num-steps {num_steps}: must be at least 1")
    train.batch_size = batch_size
    train.num_steps = num_steps
    cosine.learning_rate_base = base
    cosine.warmup_learning_rate = base * warmup_ratio
    cosine.total_steps = num_steps
    cosine.warmup_steps = round(num_steps * WARMUP_FRACTION)


def _data(config: pipeline_pb2.TrainEvalPipelineConfig, choices: PipelineChoices) -> None:
    _existing(PathReference("label_map_path", choices.label_map, "file"), "--label-map")
    _existing(PathReference("input_path", choices.train, "glob"), "--train")
    _existing(PathReference("input_path", choices.val, "glob"), "--val")
    config.model.ssd.num_classes = label_map_module.load(choices.label_map).num_classes
    for reader, pattern in ((config.train_input_reader, choices.train), (config.eval_input_reader[0], choices.val)):
        reader.label_map_path = choices.label_map
        del reader.tf_record_input_reader.input_path[:]
        reader.tf_record_input_reader.input_path.append(pattern)


def _checkpoint(config: pipeline_pb2.TrainEvalPipelineConfig, choices: PipelineChoices) -> None:
    if choices.fine_tune_checkpoint_type not in CHECKPOINT_TYPES[1:]:
        raise TfodkitError(
            f"--fine-tune-checkpoint-type {choices.fine_tune_checkpoint_type}: choose one of "
            f"{', '.join(CHECKPOINT_TYPES[1:])}"
        )
    if not choices.fine_tune_checkpoint:
        return
    reference = PathReference("fine_tune_checkpoint", choices.fine_tune_checkpoint, "checkpoint")
    _existing(reference, "--fine-tune-checkpoint")
    train = config.train_config
    train.fine_tune_checkpoint = choices.fine_tune_checkpoint
    train.fine_tune_checkpoint_type = choices.fine_tune_checkpoint_type
    train.fine_tune_checkpoint_version = pipeline_train_pb2.V2


def new_pipeline(choices: PipelineChoices) -> pipeline_pb2.TrainEvalPipelineConfig:
    """The template `choices.model` filled in and validated; input paths are checked to exist."""
    config = parse_pipeline_text(template_text(choices.model), f"template {choices.model}")
    _data(config, choices)
    _schedule(config, choices)
    _checkpoint(config, choices)
    apply_overrides(config, choices.overrides)
    check_pipeline(config, f"new pipeline from {choices.model}")
    return config
