"""pipeline.config `model { ssd { ... } }` -> SSD model; fields the support registry rejects fail by name first."""

from __future__ import annotations

from google.protobuf.message import Message

from tfodkit.config.consistency import model_problems
from tfodkit.config.field_check import field_problems, settings_error
from tfodkit.config.registry import FPN_FEATURE_EXTRACTORS
from tfodkit.errors import TfodkitError
from tfodkit.model import box_predictors, feature_extractors
from tfodkit.model.anchors import MultiscaleAnchorGenerator, SsdAnchorGenerator, ssd_box_specs
from tfodkit.model.box_coder import FasterRcnnBoxCoder
from tfodkit.model.hyperparams import BatchNormParams, ConvHyperparams
from tfodkit.model.losses import HardExampleMiner, SsdLoss
from tfodkit.model.matcher import ArgMaxMatcher
from tfodkit.model.postprocessing import NmsConfig
from tfodkit.model.preprocessing import FixedShapeResizer
from tfodkit.model.ssd import SSD
from tfodkit.model.target_assigner import TargetAssigner
from tfodkit.protos import pipeline_pb2

_ACTIVATIONS = {"NONE": "none", "RELU": "relu", "RELU_6": "relu6", "SWISH": "swish"}
_HARD_MINER_LOSS_TYPES = {"BOTH": "both", "CLASSIFICATION": "cls", "LOCALIZATION": "loc"}


def _enum_name(message: Message, field: str) -> str:
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    return descriptor.enum_type.values_by_number[getattr(message, field)].name


def conv_hyperparams(config: Message, path: str, freeze_batchnorm: bool = False) -> ConvHyperparams:
    """`Hyperparams` proto -> ConvHyperparams."""
    l2_weight = l1_weight = None
    kind = config.regularizer.WhichOneof("regularizer_oneof")
    if kind == "l2_regularizer":
        l2_weight = config.regularizer.l2_regularizer.weight
    elif kind == "l1_regularizer":
        l1_weight = config.regularizer.l1_regularizer.weight
    init_kind = config.initializer.WhichOneof("initializer_oneof")
    if init_kind is None:
        raise TfodkitError(f"{path}.initializer: required (truncated_normal, random_normal or variance_scaling)")
    init = getattr(config.initializer, init_kind)
    if init_kind == "variance_scaling_initializer":
        mode = {0: "fan_in", 1: "fan_out", 2: "fan_avg"}[init.mode]
        initializer: tuple = ("variance_scaling", init.factor, init.uniform, mode)
    else:
        initializer = (init_kind.replace("_initializer", ""), init.mean, init.stddev)
    batch_norm = None
    if config.HasField("batch_norm"):
        bn = config.batch_norm
        batch_norm = BatchNormParams(
            decay=bn.decay, center=bn.center, scale=bn.scale, epsilon=bn.epsilon, train=bn.train
        )
    return ConvHyperparams(
        l2_weight=l2_weight,
        l1_weight=l1_weight,
        initializer=initializer,
        activation=_ACTIVATIONS[_enum_name(config, "activation")],
        batch_norm=batch_norm,
        force_use_bias=config.force_use_bias,
        freeze_batchnorm=freeze_batchnorm,
    )


def image_resizer(ssd: Message) -> FixedShapeResizer:
    """`model.ssd.image_resizer` -> the fixed shape every image is resized to (model and input pipeline)."""
    kind = ssd.image_resizer.WhichOneof("image_resizer_oneof")
    if kind != "fixed_shape_resizer":
        raise TfodkitError(f"model.ssd.image_resizer: {kind or 'nothing'} is not supported; use fixed_shape_resizer")
    config = ssd.image_resizer.fixed_shape_resizer
    return FixedShapeResizer(config.height, config.width, _enum_name(config, "resize_method"))


def _feature_extractor(ssd: Message, image_shape: tuple[int, int]):
    config = ssd.feature_extractor
    path = "model.ssd.feature_extractor"
    options = feature_extractors.FeatureExtractorConfig(
        depth_multiplier=config.depth_multiplier,
        min_depth=config.min_depth,
        hyperparams=conv_hyperparams(config.conv_hyperparams, path + ".conv_hyperparams", ssd.freeze_batchnorm),
        override_base_hyperparams=config.override_base_feature_extractor_hyperparams,
        use_depthwise=config.use_depthwise,
        pad_to_multiple=config.pad_to_multiple,
    )
    # The registry allows these types only; its consistency rules have checked fpn against the type and the anchors.
    if config.type not in FPN_FEATURE_EXTRACTORS:  # ssd_mobilenet_v2(_keras): one network under two names
        if config.num_layers != 6:
            raise TfodkitError(f"{path}.num_layers: {config.type} always has 6 feature maps")
        return feature_extractors.ssd_mobilenet_v2(options, image_shape)
    fpn = config.fpn
    return feature_extractors.ssd_mobilenet_v2_fpn(
        options, image_shape, fpn.min_level, fpn.max_level, fpn.additional_layer_depth
    )


def anchor_generator(ssd: Message) -> SsdAnchorGenerator | MultiscaleAnchorGenerator:
    """The anchor generator model.ssd.anchor_generator describes (the model's own; inspect-anchors reuses it)."""
    config = ssd.anchor_generator
    kind = config.WhichOneof("anchor_generator_oneof")
    path = f"model.ssd.anchor_generator.{kind}"
    if kind == "ssd_anchor_generator":
        gen = config.ssd_anchor_generator
        if len(gen.height_stride) != len(gen.width_stride) or len(gen.height_offset) != len(gen.width_offset):
            raise TfodkitError(f"{path}: height_/width_stride and height_/width_offset must come in pairs")
        specs = ssd_box_specs(
            gen.num_layers, gen.min_scale, gen.max_scale, list(gen.scales), list(gen.aspect_ratios),
            gen.interpolated_scale_aspect_ratio, gen.reduce_boxes_in_lowest_layer,
        )
        return SsdAnchorGenerator(
            box_specs=tuple(tuple(layer) for layer in specs),
            base_anchor_size=(gen.base_anchor_height, gen.base_anchor_width),
            anchor_strides=tuple(zip(gen.height_stride, gen.width_stride)) or None,
            anchor_offsets=tuple(zip(gen.height_offset, gen.width_offset)) or None,
        )
    if kind == "multiscale_anchor_generator":
        gen = config.multiscale_anchor_generator
        return MultiscaleAnchorGenerator(
            gen.min_level, gen.max_level, gen.anchor_scale, tuple(float(r) for r in gen.aspect_ratios),
            gen.scales_per_octave, gen.normalize_coordinates,
        )
    raise TfodkitError("model.ssd.anchor_generator: ssd_anchor_generator or multiscale_anchor_generator is required")


def _box_predictor(ssd: Message, feature_shapes, anchors_per_location):
    config = ssd.box_predictor
    kind = config.WhichOneof("box_predictor_oneof")
    path = f"model.ssd.box_predictor.{kind}"
    if kind == "convolutional_box_predictor":
        pred = config.convolutional_box_predictor
        options = box_predictors.ConvolutionalBoxPredictorConfig(
            hyperparams=conv_hyperparams(pred.conv_hyperparams, path + ".conv_hyperparams", ssd.freeze_batchnorm),
            min_depth=pred.min_depth,
            max_depth=pred.max_depth,
            num_layers_before_predictor=pred.num_layers_before_predictor,
            use_dropout=pred.use_dropout,
            dropout_keep_probability=pred.dropout_keep_probability,
            kernel_size=pred.kernel_size,
            box_code_size=pred.box_code_size,
            class_prediction_bias_init=pred.class_prediction_bias_init,
            use_depthwise=pred.use_depthwise,
        )
        return box_predictors.convolutional_box_predictor(
            options, feature_shapes, anchors_per_location, ssd.num_classes
        )
    if kind == "weight_shared_convolutional_box_predictor":
        pred = config.weight_shared_convolutional_box_predictor
        clip = None
        if pred.HasField("box_encodings_clip_range"):
            clip = (pred.box_encodings_clip_range.min, pred.box_encodings_clip_range.max)
        options = box_predictors.WeightSharedBoxPredictorConfig(
            hyperparams=conv_hyperparams(pred.conv_hyperparams, path + ".conv_hyperparams", ssd.freeze_batchnorm),
            depth=pred.depth,
            num_layers_before_predictor=pred.num_layers_before_predictor,
            kernel_size=pred.kernel_size,
            box_code_size=pred.box_code_size,
            class_prediction_bias_init=pred.class_prediction_bias_init,
            use_dropout=pred.use_dropout,
            dropout_keep_probability=pred.dropout_keep_probability,
            share_prediction_tower=pred.share_prediction_tower,
            use_depthwise=pred.use_depthwise,
            sigmoid_scores=_enum_name(pred, "score_converter") == "SIGMOID",
            box_encodings_clip_range=clip,
        )
        return box_predictors.weight_shared_convolutional_box_predictor(
            options, feature_shapes, anchors_per_location, ssd.num_classes
        )
    raise TfodkitError("model.ssd.box_predictor: convolutional_box_predictor or weight_shared_... is required")


def _box_coder(ssd: Message) -> FasterRcnnBoxCoder:
    if ssd.box_coder.WhichOneof("box_coder_oneof") != "faster_rcnn_box_coder":
        raise TfodkitError("model.ssd.box_coder: only faster_rcnn_box_coder is supported")
    coder = ssd.box_coder.faster_rcnn_box_coder
    return FasterRcnnBoxCoder(coder.y_scale, coder.x_scale, coder.height_scale, coder.width_scale)


def matcher(ssd: Message) -> ArgMaxMatcher:
    """The argmax matcher model.ssd.matcher describes (with its IoU similarity)."""
    if ssd.matcher.WhichOneof("matcher_oneof") != "argmax_matcher":
        raise TfodkitError("model.ssd.matcher: only argmax_matcher is supported")
    if ssd.similarity_calculator.WhichOneof("region_similarity") != "iou_similarity":
        raise TfodkitError("model.ssd.similarity_calculator: only iou_similarity is supported")
    m = ssd.matcher.argmax_matcher
    # use_matmul_gather only changes how the OD API gathers on TPUs; the matches are the same.
    thresholds = (None, None) if m.ignore_thresholds else (m.matched_threshold, m.unmatched_threshold)
    try:
        return ArgMaxMatcher(thresholds[0], thresholds[1], m.negatives_lower_than_unmatched, m.force_match_for_each_row)
    except ValueError as error:
        raise TfodkitError(f"model.ssd.matcher.{error}") from None


def _loss(ssd: Message, code_size: int) -> SsdLoss:
    config = ssd.loss
    path = "model.ssd.loss"
    loc_kind = config.localization_loss.WhichOneof("localization_loss")
    if loc_kind != "weighted_smooth_l1":
        raise TfodkitError(
            f"{path}.localization_loss: {loc_kind or 'nothing'} is not supported; use weighted_smooth_l1"
        )
    cls_kind = config.classification_loss.WhichOneof("classification_loss")
    if cls_kind not in ("weighted_sigmoid_focal", "weighted_sigmoid"):
        raise TfodkitError(
            f"{path}.classification_loss: {cls_kind or 'nothing'} is not supported; "
            "use weighted_sigmoid_focal or weighted_sigmoid"
        )
    focal = config.classification_loss.weighted_sigmoid_focal
    miner = None
    if config.HasField("hard_example_miner"):
        if cls_kind == "weighted_sigmoid_focal":
            raise TfodkitError(
                f"{path}.hard_example_miner: should not be used with weighted_sigmoid_focal (OD API rule)"
            )
        hem = config.hard_example_miner
        miner = HardExampleMiner(
            num_hard_examples=hem.num_hard_examples if hem.num_hard_examples > 0 else None,
            iou_threshold=hem.iou_threshold,
            loss_type=_HARD_MINER_LOSS_TYPES[_enum_name(hem, "loss_type")],
            cls_loss_weight=config.classification_weight,
            loc_loss_weight=config.localization_weight,
            max_negatives_per_positive=hem.max_negatives_per_positive if hem.max_negatives_per_positive > 0 else None,
            min_negatives_per_image=hem.min_negatives_per_image,
        )
    return SsdLoss(
        classification="sigmoid_focal" if cls_kind == "weighted_sigmoid_focal" else "sigmoid",
        focal_gamma=focal.gamma,
        focal_alpha=focal.alpha if focal.HasField("alpha") else None,
        smooth_l1_delta=config.localization_loss.weighted_smooth_l1.delta,
        classification_weight=config.classification_weight,
        localization_weight=config.localization_weight,
        hard_example_miner=miner,
        normalize_loss_by_num_matches=ssd.normalize_loss_by_num_matches,
        normalize_loc_loss_by_codesize=ssd.normalize_loc_loss_by_codesize,
        code_size=code_size,
    )


def _nms(ssd: Message) -> tuple[NmsConfig, str, float]:
    post = ssd.post_processing
    nms = post.batch_non_max_suppression
    try:
        config = NmsConfig(
            nms.score_threshold, nms.iou_threshold, nms.max_detections_per_class, nms.max_total_detections,
            nms.soft_nms_sigma,
        )
    except ValueError as error:
        raise TfodkitError(f"model.ssd.post_processing: {error}") from None
    return config, _enum_name(post, "score_converter"), post.logit_scale


def build_ssd(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig) -> SSD:
    """Build the SSD a pipeline.config describes (weights freshly initialised, ready to load or train)."""
    if pipeline_config.model.WhichOneof("model") != "ssd":
        raise TfodkitError("model: only `ssd { ... }` models are supported")
    # The support registry (config/registry.py) and the rules between model fields, as load_pipeline checks them.
    problems = field_problems(pipeline_config.model, "model") or model_problems(pipeline_config.model.ssd)
    if problems:
        raise settings_error("model", problems)
    ssd = pipeline_config.model.ssd
    # The cheap parts first, so a config error surfaces before any network is built.
    resizer = image_resizer(ssd)
    box_coder = _box_coder(ssd)
    box_matcher = matcher(ssd)
    loss = _loss(ssd, box_coder.code_size)
    nms, score_converter, logit_scale = _nms(ssd)
    try:
        generator = anchor_generator(ssd)
        extractor = _feature_extractor(ssd, (resizer.height, resizer.width))
    except ValueError as error:
        raise TfodkitError(f"model.ssd: {error}") from None
    feature_shapes = [tuple(int(d) for d in output.shape[1:]) for output in extractor.outputs]
    anchors_per_location = generator.num_anchors_per_location()
    if len(anchors_per_location) != len(feature_shapes):
        raise TfodkitError(
            f"model.ssd.anchor_generator: {len(anchors_per_location)} anchor layers for "
            f"{len(feature_shapes)} feature maps"
        )
    anchors = generator.generate([s[:2] for s in feature_shapes], resizer.height, resizer.width)
    try:
        predictor = _box_predictor(ssd, feature_shapes, anchors_per_location)
    except ValueError as error:
        raise TfodkitError(f"model.ssd.box_predictor: {error}") from None
    return SSD(
        num_classes=ssd.num_classes,
        resizer=resizer,
        feature_extractor=extractor,
        box_predictor=predictor,
        anchors=anchors,
        box_coder=box_coder,
        target_assigner=TargetAssigner(
            box_matcher, box_coder, ssd.num_classes, ssd.encode_background_as_zeros, ssd.negative_class_weight
        ),
        loss=loss,
        nms=nms,
        score_converter=score_converter,
        logit_scale=logit_scale,
    )
