"""Plain-text summary of a validated pipeline.config: model variant, input size, loss, schedule, referenced paths."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tfodkit.config.paths import is_placeholder, referenced_paths
from tfodkit.config.registry import FPN_FEATURE_EXTRACTORS
from tfodkit.protos import pipeline_pb2, pipeline_post_processing_pb2

_SCORE_CONVERTER = pipeline_post_processing_pb2.PostProcessing.ScoreConverter


def _fields(message: Message) -> str:
    """`name value` pairs of the fields set in a small message, e.g. `gamma 2, alpha 0.25`."""
    parts = []
    for field, value in message.ListFields():
        if field.message_type is None:
            shown = [_scalar(field, item) for item in value] if field.is_repeated else _scalar(field, value)
            parts.append(f"{field.name} {'[' + ', '.join(shown) + ']' if field.is_repeated else shown}")
    return ", ".join(parts)


def _scalar(field: FieldDescriptor, value: object) -> str:
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _oneof(message: Message, oneof: str) -> str:
    """`choice (its fields)` for the member of `oneof` that is set."""
    name = message.WhichOneof(oneof)
    if name is None:
        return "none"
    details = _fields(getattr(message, name))
    return f"{name} ({details})" if details else name


def variant(ssd: pipeline_pb2.Ssd) -> str:
    """Human name of the architecture: SSD / SSDLite / SSD FPNLite MobileNetV2."""
    extractor = ssd.feature_extractor
    if extractor.type in FPN_FEATURE_EXTRACTORS:
        name = "SSD MobileNetV2 FPNLite" if extractor.use_depthwise else "SSD MobileNetV2 FPN"
    else:
        name = "SSDLite MobileNetV2" if extractor.use_depthwise else "SSD MobileNetV2"
    return f"{name} ({extractor.type}, depth_multiplier {extractor.depth_multiplier:g})"


def _loss(ssd: pipeline_pb2.Ssd) -> list[str]:
    loss = ssd.loss
    lines = [
        f"classification: {_oneof(loss.classification_loss, 'classification_loss')} x {loss.classification_weight:g}",
        f"localization: {_oneof(loss.localization_loss, 'localization_loss')} x {loss.localization_weight:g}",
    ]
    if loss.HasField("hard_example_miner"):
        lines.append(f"hard example miner: {_fields(loss.hard_example_miner)}")
    normalization = ["by matched anchors" if ssd.normalize_loss_by_num_matches else "not by matched anchors"]
    if ssd.normalize_loc_loss_by_codesize:
        normalization.append("localization also by box code size")
    lines.append("normalized " + "; ".join(normalization))
    return lines


def _schedule(train: pipeline_pb2.TrainConfig) -> list[str]:
    optimizer_name = train.optimizer.WhichOneof("optimizer")
    lines = [f"batch size {train.batch_size}, {train.num_steps} steps"]
    if optimizer_name is None:
        return lines + ["optimizer: none (required for training)"]
    optimizer = getattr(train.optimizer, optimizer_name)
    settings = _fields(optimizer)
    lines.append(f"optimizer: {optimizer_name}" + (f" ({settings})" if settings else ""))
    lines.append(f"learning rate: {_oneof(optimizer.learning_rate, 'learning_rate')}")
    if train.optimizer.use_moving_average:
        lines.append(f"moving average of weights, decay {train.optimizer.moving_average_decay:g}")
    augmentations = [step.WhichOneof("preprocessing_step") for step in train.data_augmentation_options]
    lines.append("augmentation: " + (", ".join(augmentations) if augmentations else "none"))
    if train.fine_tune_checkpoint:
        lines.append(f"fine-tune from a {train.fine_tune_checkpoint_type or 'classification'} checkpoint")
    return lines


def _path_status(files: list[Path], kind: str, value: str) -> str:
    if is_placeholder(value):
        return "PLACEHOLDER (fill in)"
    if not files:
        return "MISSING"
    return f"{len(files)} file(s)" if kind == "glob" else "exists"


def path_lines(config: pipeline_pb2.TrainEvalPipelineConfig, base: Path | None = None) -> list[str]:
    """One `field: value [status]` line per referenced path."""
    return [
        f"{ref.field}: {ref.value}  [{_path_status(ref.matches(base), ref.kind, ref.value)}]"
        for ref in referenced_paths(config)
    ]


def summary_sections(config: pipeline_pb2.TrainEvalPipelineConfig) -> dict[str, list[str]]:
    """Section title -> lines, for printing."""
    ssd = config.model.ssd
    resizer = ssd.image_resizer.fixed_shape_resizer
    sections = {
        "model": [
            variant(ssd),
            f"input {resizer.height}x{resizer.width}, {ssd.num_classes} classes",
            f"box predictor: {ssd.box_predictor.WhichOneof('box_predictor_oneof')}",
            f"anchors: {_oneof(ssd.anchor_generator, 'anchor_generator_oneof')}",
            f"post-processing: {_fields(ssd.post_processing.batch_non_max_suppression)}, scores "
            f"{_SCORE_CONVERTER.Name(ssd.post_processing.score_converter)}",
        ],
        "loss": _loss(ssd),
    }
    if config.HasField("train_config"):
        sections["schedule"] = _schedule(config.train_config)
    sections["paths"] = path_lines(config) or ["none"]
    return sections
