"""Rules that tie several pipeline.config fields together (extractor vs anchors vs FPN, schedules, readers)."""

from __future__ import annotations

from tfodkit.config.paths import is_keras_weights_file, is_placeholder
from tfodkit.config.registry import FPN_FEATURE_EXTRACTORS
from tfodkit.protos import pipeline_pb2, pipeline_train_pb2

SSD_MOBILENET_V2_FEATURE_MAPS = 6


def model_problems(ssd: pipeline_pb2.Ssd) -> list[str]:
    """The rules between model.ssd's fields: extractor, FPN levels, anchor generator, matcher thresholds."""
    problems = []
    prefix = "model.ssd"
    extractor = ssd.feature_extractor
    is_fpn = extractor.type in FPN_FEATURE_EXTRACTORS
    anchors = ssd.anchor_generator.WhichOneof("anchor_generator_oneof")
    if is_fpn:
        if not extractor.HasField("fpn"):
            problems.append(f"{prefix}.feature_extractor.fpn: required by type {extractor.type!r}")
        if anchors == "ssd_anchor_generator":
            problems.append(
                f"{prefix}.anchor_generator.ssd_anchor_generator: {extractor.type!r} needs "
                "multiscale_anchor_generator (one anchor set per pyramid level)"
            )
        if anchors == "multiscale_anchor_generator" and extractor.HasField("fpn"):
            generator = ssd.anchor_generator.multiscale_anchor_generator
            levels = (generator.min_level, generator.max_level)
            fpn_levels = (extractor.fpn.min_level, extractor.fpn.max_level)
            if levels != fpn_levels:
                problems.append(
                    f"{prefix}.anchor_generator.multiscale_anchor_generator: levels {levels[0]}..{levels[1]} "
                    f"differ from feature_extractor.fpn levels {fpn_levels[0]}..{fpn_levels[1]}"
                )
        if extractor.HasField("fpn") and extractor.fpn.min_level > extractor.fpn.max_level:
            problems.append(f"{prefix}.feature_extractor.fpn: min_level exceeds max_level")
    else:
        if extractor.HasField("fpn"):
            problems.append(
                f"{prefix}.feature_extractor.fpn: only allowed with type "
                f"{' or '.join(repr(t) for t in FPN_FEATURE_EXTRACTORS)}, not {extractor.type!r}"
            )
        if anchors == "multiscale_anchor_generator":
            problems.append(
                f"{prefix}.anchor_generator.multiscale_anchor_generator: type {extractor.type!r} needs "
                "ssd_anchor_generator"
            )
        if anchors == "ssd_anchor_generator":
            num_layers = ssd.anchor_generator.ssd_anchor_generator.num_layers
            if num_layers != SSD_MOBILENET_V2_FEATURE_MAPS:
                problems.append(
                    f"{prefix}.anchor_generator.ssd_anchor_generator.num_layers: {num_layers}, but "
                    f"{extractor.type!r} produces {SSD_MOBILENET_V2_FEATURE_MAPS} feature maps"
                )
    matcher = ssd.matcher.argmax_matcher
    if ssd.matcher.HasField("argmax_matcher") and matcher.unmatched_threshold > matcher.matched_threshold:
        problems.append(f"{prefix}.matcher.argmax_matcher.unmatched_threshold: exceeds matched_threshold")
    return problems


def _schedule_problems(train: pipeline_pb2.TrainConfig) -> list[str]:
    optimizer_name = train.optimizer.WhichOneof("optimizer")
    if optimizer_name is None:
        return []
    learning_rate = getattr(train.optimizer, optimizer_name).learning_rate
    if learning_rate.WhichOneof("learning_rate") != "cosine_decay_learning_rate":
        return []
    cosine = learning_rate.cosine_decay_learning_rate
    path = f"train_config.optimizer.{optimizer_name}.learning_rate.cosine_decay_learning_rate"
    problems = []
    if cosine.warmup_steps > cosine.total_steps:
        problems.append(f"{path}.warmup_steps: {cosine.warmup_steps} exceeds total_steps {cosine.total_steps}")
    if cosine.warmup_steps > 0 and cosine.warmup_learning_rate > cosine.learning_rate_base:
        problems.append(f"{path}.warmup_learning_rate: exceeds learning_rate_base")
    return problems


def _checkpoint_problems(train: pipeline_pb2.TrainConfig) -> list[str]:
    checkpoint = train.fine_tune_checkpoint
    if not checkpoint or is_placeholder(checkpoint) or is_keras_weights_file(checkpoint):
        return []
    if train.fine_tune_checkpoint_version != pipeline_train_pb2.V2:
        return [
            "train_config.fine_tune_checkpoint_version: tfodkit restores TF2 object-based checkpoints (V2) "
            "and Keras weights files, not TF1 name-based (V1) checkpoints; set fine_tune_checkpoint_version: "
            "V2, or convert a TF1 backbone with `tfodkit pretrained-backbone`"
        ]
    return []


def consistency_problems(config: pipeline_pb2.TrainEvalPipelineConfig) -> list[str]:
    """Problems that no single field shows on its own, as `field.path: problem` lines."""
    problems = []
    if config.model.HasField("ssd"):
        problems.extend(model_problems(config.model.ssd))
    if config.HasField("train_config"):
        problems.extend(_schedule_problems(config.train_config))
        problems.extend(_checkpoint_problems(config.train_config))
    if len(config.eval_input_reader) > 1:
        problems.append(
            f"eval_input_reader: {len(config.eval_input_reader)} readers given; tfodkit evaluates one "
            "(merge their input_path lists into one reader)"
        )
    return problems
