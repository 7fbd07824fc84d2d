"""A sweep's settings as `--set` overrides: aliases (learning_rate, batch_size, num_steps) and linear LR scaling."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tfodkit.config.overrides import apply_overrides
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_pb2

_COSINE = "cosine_decay_learning_rate"
# The field each schedule starts from: what the `learning_rate` alias sets.
_BASE_RATE = {
    _COSINE: "learning_rate_base",
    "constant_learning_rate": "learning_rate",
    "exponential_decay_learning_rate": "initial_learning_rate",
    "manual_step_learning_rate": "initial_learning_rate",
}


def _number(value: float) -> str:
    """A rate as pipeline.config writes it: 7 significant digits (float32), no float64 noise."""
    return f"{value:.7g}"


def _find_schedule(config: pipeline_pb2.TrainEvalPipelineConfig) -> tuple[str, Message] | None:
    """The learning-rate schedule's field path and message; None when the config has none."""
    optimizer = config.train_config.optimizer
    kind = optimizer.WhichOneof("optimizer")
    rate = getattr(optimizer, kind).learning_rate if kind else None
    schedule = rate.WhichOneof("learning_rate") if rate is not None else None
    if schedule is None:
        return None
    return f"train_config.optimizer.{kind}.learning_rate.{schedule}", getattr(rate, schedule)


def _schedule(config: pipeline_pb2.TrainEvalPipelineConfig) -> tuple[str, Message]:
    found = _find_schedule(config)
    if found is None:
        raise TfodkitError("train_config.optimizer has no learning-rate schedule to set or scale")
    return found


def _learning_rate(config: pipeline_pb2.TrainEvalPipelineConfig, text: str) -> list[str]:
    prefix, schedule = _schedule(config)
    kind = prefix.rsplit(".", 1)[1]
    overrides = [f"{prefix}.{_BASE_RATE[kind]}={text}"]
    if kind == _COSINE and schedule.learning_rate_base > 0:
        ratio = schedule.warmup_learning_rate / schedule.learning_rate_base
        overrides.append(f"{prefix}.warmup_learning_rate={_number(float(text) * ratio)}")
    return overrides


def _num_steps(config: pipeline_pb2.TrainEvalPipelineConfig, text: str) -> list[str]:
    overrides = [f"train_config.num_steps={text}"]
    found = _find_schedule(config)
    if found is not None and found[0].endswith(_COSINE):
        prefix, cosine = found
        steps = int(text)
        warmup = round(cosine.warmup_steps * steps / cosine.total_steps) if cosine.total_steps else 0
        overrides += [f"{prefix}.total_steps={steps}", f"{prefix}.warmup_steps={warmup}"]
    return overrides


def apply_setting(config: pipeline_pb2.TrainEvalPipelineConfig, key: str, text: str) -> list[str]:
    """Give `key` (an alias or a field path as `--set` takes it) the value `text` in `config`, in place; returns the
    `--set` overrides applied.

    `learning_rate`: the schedule's base rate (cosine: learning_rate_base, warmup_learning_rate kept in
    proportion); `batch_size`: train_config.batch_size; `num_steps`: train_config.num_steps (cosine: total_steps
    too, warmup_steps kept in proportion)."""
    if key == "learning_rate":
        overrides = _learning_rate(config, text)
    elif key == "num_steps":
        overrides = _num_steps(config, text)
    elif key == "batch_size":
        overrides = [f"train_config.batch_size={text}"]
    else:
        overrides = [f"{key}={text}"]
    apply_overrides(config, overrides)
    return overrides


def _rate_fields(message: Message, prefix: str) -> list[tuple[str, float]]:
    """(path, effective value) of every float field named *learning_rate* in `message` and the messages it holds."""
    found = []
    for field in message.DESCRIPTOR.fields:
        path, value = f"{prefix}.{field.name}", getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for index, item in enumerate(value):
                    found += _rate_fields(item, f"{path}[{index}]")
            elif message.HasField(field.name):
                found += _rate_fields(value, path)
        elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE) and "learning_rate" in field.name:
            found.append((path, value))
    return found


def scale_learning_rate(config: pipeline_pb2.TrainEvalPipelineConfig, factor: float) -> list[str]:
    """Multiply every rate of the schedule (base, warmup, steps) by `factor` in place; returns the overrides."""
    prefix, schedule = _schedule(config)
    overrides = [f"{path}={_number(float(_number(value)) * factor)}" for path, value in _rate_fields(schedule, prefix)]
    apply_overrides(config, overrides)
    return overrides
