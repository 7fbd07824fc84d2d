"""The one registry of which pipeline.config fields tfodkit honours, accepts without effect, or rejects.

Keys are `Message.field` (message names as in tfodkit/protos/pipeline*.proto, which mirror the OD API's).
A field that is not listed is supported only at its OD API default: setting it to any other value (or
setting a message / non-empty repeated field that is not listed) is an error naming the field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Support(enum.Enum):
    """How tfodkit treats a field it accepts."""

    IMPLEMENTED = "implemented"
    NO_EFFECT = "accepted, no effect"


@dataclass(frozen=True)
class FieldRule:
    """What tfodkit does with one field, and which values (if restricted) it can honour."""

    support: Support
    note: str = ""
    # Values tfodkit can honour (enum values by name); checked against the effective value, default included.
    allowed: tuple[object, ...] | None = None
    # The field must be set whenever its message is present.
    required: bool = False
    # Smallest accepted value of a numeric field.
    minimum: float | None = None


def _impl(
    note: str = "",
    *,
    allowed: tuple[object, ...] | None = None,
    required: bool = False,
    minimum: float | None = None,
) -> FieldRule:
    return FieldRule(Support.IMPLEMENTED, note, allowed, required, minimum)


def _no_effect(reason: str, *, allowed: tuple[object, ...] | None = None) -> FieldRule:
    return FieldRule(Support.NO_EFFECT, reason, allowed)


FEATURE_EXTRACTORS = ("ssd_mobilenet_v2_keras", "ssd_mobilenet_v2", "ssd_mobilenet_v2_fpn_keras")
FPN_FEATURE_EXTRACTORS = ("ssd_mobilenet_v2_fpn_keras",)
CHECKPOINT_TYPES = ("", "classification", "detection", "full")

_TF1_REPLICAS = "TF1 synchronous-replica setting; the OD API's TF2 trainer (model_lib_v2) ignores it too"
_TF1_QUEUES = "TF1 queue-runner input setting; tf.data input pipelines (the OD API's TF2 ones too) do not read it"
_READER_SPEED = "reader parallelism / prefetch tuning: changes throughput, not which examples are read"
_DEPRECATED = "deprecated and ignored by the OD API itself"

FIELDS: dict[str, FieldRule] = {
    # --- top level -------------------------------------------------------------------------------------------
    "TrainEvalPipelineConfig.model": _impl(required=True),
    "TrainEvalPipelineConfig.train_config": _impl(),
    "TrainEvalPipelineConfig.train_input_reader": _impl(),
    "TrainEvalPipelineConfig.eval_config": _impl(),
    "TrainEvalPipelineConfig.eval_input_reader": _impl("at most one reader: the validation set"),
    "DetectionModel.ssd": _impl(),
    # --- SSD meta-architecture ---------------------------------------------------------------------------
    "Ssd.num_classes": _impl(required=True, minimum=1),
    "Ssd.image_resizer": _impl(required=True),
    "Ssd.feature_extractor": _impl(required=True),
    "Ssd.box_coder": _impl(required=True),
    "Ssd.matcher": _impl(required=True),
    "Ssd.similarity_calculator": _impl(required=True),
    "Ssd.box_predictor": _impl(required=True),
    "Ssd.anchor_generator": _impl(required=True),
    "Ssd.post_processing": _impl(required=True),
    "Ssd.loss": _impl(required=True),
    "Ssd.normalize_loss_by_num_matches": _impl(),
    "Ssd.normalize_loc_loss_by_codesize": _impl(),
    "Ssd.encode_background_as_zeros": _impl(
        "true: the classification target of unmatched anchors is all zeros instead of one-hot background; "
        "the class head keeps its background column either way"
    ),
    "Ssd.add_background_class": _impl(allowed=(True,)),
    "Ssd.negative_class_weight": _impl("classification weight of unmatched anchors"),
    "Ssd.freeze_batchnorm": _impl("true: every batch norm layer runs in inference mode while training"),
    "Ssd.inplace_batchnorm_update": _no_effect(
        "TF1 switch between UPDATE_OPS and in-place batch norm updates; Keras batch norm always updates "
        "its moving statistics in the training forward pass (the OD API's Keras models ignore it too)"
    ),
    # --- feature extractor -------------------------------------------------------------------------------
    "SsdFeatureExtractor.type": _impl(
        "ssd_mobilenet_v2 (the TF1 name) builds the same network as ssd_mobilenet_v2_keras",
        allowed=FEATURE_EXTRACTORS,
        required=True,
    ),
    "SsdFeatureExtractor.depth_multiplier": _impl(minimum=0.0),
    "SsdFeatureExtractor.min_depth": _impl(minimum=1),
    "SsdFeatureExtractor.pad_to_multiple": _impl(minimum=1),
    "SsdFeatureExtractor.use_depthwise": _impl("true: depthwise-separable extra layers (SSDLite / FPNLite)"),
    "SsdFeatureExtractor.conv_hyperparams": _impl(required=True),
    "SsdFeatureExtractor.override_base_feature_extractor_hyperparams": _impl(
        "true: the MobileNetV2 backbone also uses conv_hyperparams; false: Keras MobileNetV2 defaults"
    ),
    "SsdFeatureExtractor.num_layers": _impl("must be 6 for ssd_mobilenet_v2(_keras)"),
    "SsdFeatureExtractor.fpn": _impl("required by, and only allowed with, ssd_mobilenet_v2_fpn_keras"),
    "FeaturePyramidNetworks.min_level": _impl(minimum=3),
    "FeaturePyramidNetworks.max_level": _impl(minimum=3),
    "FeaturePyramidNetworks.additional_layer_depth": _impl(minimum=1),
    # --- layer hyperparameters ---------------------------------------------------------------------------
    "Hyperparams.op": _impl(allowed=("CONV",)),
    "Hyperparams.regularizer": _impl(required=True),
    "Hyperparams.initializer": _impl(required=True),
    "Hyperparams.activation": _impl(allowed=("NONE", "RELU", "RELU_6", "SWISH")),
    "Hyperparams.batch_norm": _impl("absent: no normalization, convolutions get a bias"),
    "Hyperparams.force_use_bias": _impl(),
    "Regularizer.l2_regularizer": _impl(),
    "Regularizer.l1_regularizer": _impl(),
    "L2Regularizer.weight": _impl("adds weight * sum(w^2) / 2 to the loss (tf.nn.l2_loss convention)", minimum=0.0),
    "L1Regularizer.weight": _impl("adds weight * sum(|w|) to the loss", minimum=0.0),
    "Initializer.truncated_normal_initializer": _impl(),
    "Initializer.random_normal_initializer": _impl(),
    "Initializer.variance_scaling_initializer": _impl(),
    "TruncatedNormalInitializer.mean": _impl(),
    "TruncatedNormalInitializer.stddev": _impl(minimum=0.0),
    "RandomNormalInitializer.mean": _impl(),
    "RandomNormalInitializer.stddev": _impl(minimum=0.0),
    "VarianceScalingInitializer.factor": _impl(minimum=0.0),
    "VarianceScalingInitializer.uniform": _impl(),
    "VarianceScalingInitializer.mode": _impl(),
    "BatchNorm.decay": _impl("Keras momentum"),
    "BatchNorm.center": _impl(),
    "BatchNorm.scale": _impl(),
    "BatchNorm.epsilon": _impl(minimum=0.0),
    "BatchNorm.train": _impl("false: batch norm variables are frozen"),
    # --- resizer -------------------------------------------------------------------------------------------
    "ImageResizer.fixed_shape_resizer": _impl(),
    "FixedShapeResizer.height": _impl(minimum=1),
    "FixedShapeResizer.width": _impl(minimum=1),
    "FixedShapeResizer.resize_method": _impl("tf.compat.v1.image.resize_images with align_corners false"),
    # --- anchors -------------------------------------------------------------------------------------------
    "AnchorGenerator.ssd_anchor_generator": _impl("with ssd_mobilenet_v2(_keras)"),
    "AnchorGenerator.multiscale_anchor_generator": _impl("with ssd_mobilenet_v2_fpn_keras"),
    "SsdAnchorGenerator.num_layers": _impl("must be 6: the number of SSD MobileNetV2 feature maps"),
    "SsdAnchorGenerator.min_scale": _impl(minimum=0.0),
    "SsdAnchorGenerator.max_scale": _impl(minimum=0.0),
    "SsdAnchorGenerator.scales": _impl(),
    "SsdAnchorGenerator.aspect_ratios": _impl(),
    "SsdAnchorGenerator.interpolated_scale_aspect_ratio": _impl(),
    "SsdAnchorGenerator.reduce_boxes_in_lowest_layer": _impl(),
    "SsdAnchorGenerator.base_anchor_height": _impl(),
    "SsdAnchorGenerator.base_anchor_width": _impl(),
    "SsdAnchorGenerator.height_stride": _impl("explicit per-layer strides, in pairs with width_stride"),
    "SsdAnchorGenerator.width_stride": _impl(),
    "SsdAnchorGenerator.height_offset": _impl("explicit per-layer offsets, in pairs with width_offset"),
    "SsdAnchorGenerator.width_offset": _impl(),
    "MultiscaleAnchorGenerator.min_level": _impl("must equal fpn.min_level"),
    "MultiscaleAnchorGenerator.max_level": _impl("must equal fpn.max_level"),
    "MultiscaleAnchorGenerator.anchor_scale": _impl(minimum=0.0),
    "MultiscaleAnchorGenerator.aspect_ratios": _impl(),
    "MultiscaleAnchorGenerator.scales_per_octave": _impl(minimum=1),
    "MultiscaleAnchorGenerator.normalize_coordinates": _impl(),
    # --- box coder, matcher, similarity --------------------------------------------------------------------
    "BoxCoder.faster_rcnn_box_coder": _impl(),
    "FasterRcnnBoxCoder.y_scale": _impl(),
    "FasterRcnnBoxCoder.x_scale": _impl(),
    "FasterRcnnBoxCoder.height_scale": _impl(),
    "FasterRcnnBoxCoder.width_scale": _impl(),
    "Matcher.argmax_matcher": _impl(),
    "ArgMaxMatcher.matched_threshold": _impl(),
    "ArgMaxMatcher.unmatched_threshold": _impl("must not exceed matched_threshold"),
    "ArgMaxMatcher.ignore_thresholds": _impl(),
    "ArgMaxMatcher.negatives_lower_than_unmatched": _impl(),
    "ArgMaxMatcher.force_match_for_each_row": _impl(),
    "ArgMaxMatcher.use_matmul_gather": _no_effect("TPU speed trick (gather as a one-hot matmul); same matches"),
    "RegionSimilarityCalculator.iou_similarity": _impl(),
    # --- box predictors ------------------------------------------------------------------------------------
    "BoxPredictor.convolutional_box_predictor": _impl(),
    "BoxPredictor.weight_shared_convolutional_box_predictor": _impl(),
    "ConvolutionalBoxPredictor.conv_hyperparams": _impl(required=True),
    "ConvolutionalBoxPredictor.min_depth": _impl(minimum=0),
    "ConvolutionalBoxPredictor.max_depth": _impl("0: no extra layers before the predictor", minimum=0),
    "ConvolutionalBoxPredictor.num_layers_before_predictor": _impl(minimum=0),
    "ConvolutionalBoxPredictor.use_dropout": _impl("the OD API default is true: write false to train without dropout"),
    "ConvolutionalBoxPredictor.dropout_keep_probability": _impl(minimum=0.0),
    "ConvolutionalBoxPredictor.kernel_size": _impl(minimum=1),
    "ConvolutionalBoxPredictor.box_code_size": _impl(allowed=(4,)),
    "ConvolutionalBoxPredictor.apply_sigmoid_to_scores": _impl(allowed=(False,)),
    "ConvolutionalBoxPredictor.class_prediction_bias_init": _impl(),
    "ConvolutionalBoxPredictor.use_depthwise": _impl(),
    "WeightSharedConvolutionalBoxPredictor.conv_hyperparams": _impl(required=True),
    "WeightSharedConvolutionalBoxPredictor.depth": _impl(minimum=1),
    "WeightSharedConvolutionalBoxPredictor.num_layers_before_predictor": _impl(minimum=0),
    "WeightSharedConvolutionalBoxPredictor.kernel_size": _impl(minimum=1),
    "WeightSharedConvolutionalBoxPredictor.box_code_size": _impl(allowed=(4,)),
    "WeightSharedConvolutionalBoxPredictor.class_prediction_bias_init": _impl(),
    "WeightSharedConvolutionalBoxPredictor.use_dropout": _impl(),
    "WeightSharedConvolutionalBoxPredictor.dropout_keep_probability": _impl(minimum=0.0),
    "WeightSharedConvolutionalBoxPredictor.score_converter": _impl(),
    "WeightSharedConvolutionalBoxPredictor.box_encodings_clip_range": _impl(),
    "WeightSharedConvolutionalBoxPredictor.BoxEncodingsClipRange.min": _impl(),
    "WeightSharedConvolutionalBoxPredictor.BoxEncodingsClipRange.max": _impl(),
    "WeightSharedConvolutionalBoxPredictor.share_prediction_tower": _impl(),
    "WeightSharedConvolutionalBoxPredictor.use_depthwise": _impl(),
    # --- losses --------------------------------------------------------------------------------------------
    "Loss.classification_loss": _impl(required=True),
    "Loss.localization_loss": _impl(required=True),
    "Loss.hard_example_miner": _impl(),
    "Loss.classification_weight": _impl(minimum=0.0),
    "Loss.localization_weight": _impl(minimum=0.0),
    "ClassificationLoss.weighted_sigmoid_focal": _impl(),
    "ClassificationLoss.weighted_sigmoid": _impl(),
    "SigmoidFocalClassificationLoss.gamma": _impl(minimum=0.0),
    "SigmoidFocalClassificationLoss.alpha": _impl("unset: no alpha weighting"),
    "SigmoidFocalClassificationLoss.anchorwise_output": _no_effect(_DEPRECATED),
    "WeightedSigmoidClassificationLoss.anchorwise_output": _no_effect(_DEPRECATED),
    "LocalizationLoss.weighted_smooth_l1": _impl(),
    "WeightedSmoothL1LocalizationLoss.delta": _impl(minimum=0.0),
    "WeightedSmoothL1LocalizationLoss.anchorwise_output": _no_effect(_DEPRECATED),
    "HardExampleMiner.num_hard_examples": _impl(minimum=0),
    "HardExampleMiner.iou_threshold": _impl(),
    "HardExampleMiner.loss_type": _impl(),
    "HardExampleMiner.max_negatives_per_positive": _impl(minimum=0),
    "HardExampleMiner.min_negatives_per_image": _impl(minimum=0),
    # --- post-processing -----------------------------------------------------------------------------------
    "PostProcessing.batch_non_max_suppression": _impl(required=True),
    "PostProcessing.score_converter": _impl("SIGMOID for the sigmoid / focal losses"),
    "PostProcessing.logit_scale": _impl("logits are divided by it before the converter"),
    "BatchNonMaxSuppression.score_threshold": _impl(),
    "BatchNonMaxSuppression.iou_threshold": _impl(),
    "BatchNonMaxSuppression.max_detections_per_class": _impl(minimum=1),
    "BatchNonMaxSuppression.max_total_detections": _impl(minimum=1),
    "BatchNonMaxSuppression.soft_nms_sigma": _impl("> 0: soft NMS", minimum=0.0),
    # --- training ------------------------------------------------------------------------------------------
    "TrainConfig.batch_size": _impl(minimum=1),
    "TrainConfig.num_steps": _impl(minimum=1),
    "TrainConfig.optimizer": _impl(),
    "TrainConfig.data_augmentation_options": _impl("applied in the order given"),
    "TrainConfig.fine_tune_checkpoint": _impl("a TF2 checkpoint prefix or a Keras weights file (.weights.h5)"),
    "TrainConfig.fine_tune_checkpoint_type": _impl(
        "empty means classification (the OD API's rule)", allowed=CHECKPOINT_TYPES
    ),
    "TrainConfig.fine_tune_checkpoint_version": _impl(
        "V2 (TF2 object-based) checkpoints; V1 is accepted only while fine_tune_checkpoint is unset, a "
        "placeholder or a Keras weights file"
    ),
    "TrainConfig.gradient_clipping_by_norm": _impl("> 0: clip the global gradient norm", minimum=0.0),
    "TrainConfig.add_regularization_loss": _impl(),
    "TrainConfig.max_number_of_boxes": _impl("groundtruth boxes per image are padded to this", minimum=1),
    "TrainConfig.sync_replicas": _no_effect(_TF1_REPLICAS),
    "TrainConfig.replicas_to_aggregate": _no_effect(_TF1_REPLICAS),
    "TrainConfig.startup_delay_steps": _no_effect(_TF1_REPLICAS),
    "TrainConfig.keep_checkpoint_every_n_hours": _no_effect("TF1 Saver setting; the OD API's TF2 trainer ignores it"),
    "TrainConfig.batch_queue_capacity": _no_effect(_TF1_QUEUES),
    "TrainConfig.num_batch_queue_threads": _no_effect(_TF1_QUEUES),
    "TrainConfig.prefetch_queue_capacity": _no_effect(_TF1_QUEUES),
    "TrainConfig.unpad_groundtruth_tensors": _no_effect(
        "static-shape switch for TPUs: trailing padding rows are always dropped before matching and the rest "
        "masked by their zero weights, so losses are identical"
    ),
    "TrainConfig.use_bfloat16": _no_effect("TPU-only mixed precision; only false is accepted", allowed=(False,)),
    "Optimizer.momentum_optimizer": _impl("Keras SGD with the fused ResourceApplyKerasMomentum update, as tf_keras"),
    "Optimizer.adam_optimizer": _impl(),
    "Optimizer.rms_prop_optimizer": _impl(),
    "Optimizer.use_moving_average": _impl(),
    "Optimizer.moving_average_decay": _impl(),
    "MomentumOptimizer.learning_rate": _impl(required=True),
    "MomentumOptimizer.momentum_optimizer_value": _impl(),
    "AdamOptimizer.learning_rate": _impl(required=True),
    "AdamOptimizer.epsilon": _impl(),
    "RMSPropOptimizer.learning_rate": _impl(required=True),
    "RMSPropOptimizer.momentum_optimizer_value": _impl(),
    "RMSPropOptimizer.decay": _impl("Keras rho"),
    "RMSPropOptimizer.epsilon": _impl(),
    "LearningRate.constant_learning_rate": _impl(),
    "LearningRate.exponential_decay_learning_rate": _impl(),
    "LearningRate.manual_step_learning_rate": _impl(),
    "LearningRate.cosine_decay_learning_rate": _impl(),
    "ConstantLearningRate.learning_rate": _impl(minimum=0.0),
    "ExponentialDecayLearningRate.initial_learning_rate": _impl(minimum=0.0),
    "ExponentialDecayLearningRate.decay_steps": _impl(minimum=1),
    "ExponentialDecayLearningRate.decay_factor": _impl(),
    "ExponentialDecayLearningRate.staircase": _impl(),
    "ExponentialDecayLearningRate.burnin_learning_rate": _impl(),
    "ExponentialDecayLearningRate.burnin_steps": _impl(),
    "ExponentialDecayLearningRate.min_learning_rate": _impl(),
    "ManualStepLearningRate.initial_learning_rate": _impl(minimum=0.0),
    "ManualStepLearningRate.schedule": _impl(),
    "ManualStepLearningRate.warmup": _impl(),
    "ManualStepLearningRate.LearningRateSchedule.step": _impl(),
    "ManualStepLearningRate.LearningRateSchedule.learning_rate": _impl(minimum=0.0),
    "CosineDecayLearningRate.learning_rate_base": _impl(minimum=0.0),
    "CosineDecayLearningRate.total_steps": _impl(minimum=1),
    "CosineDecayLearningRate.warmup_learning_rate": _impl(minimum=0.0),
    "CosineDecayLearningRate.warmup_steps": _impl("must not exceed total_steps"),
    "CosineDecayLearningRate.hold_base_rate_steps": _impl(),
    # --- data augmentation ---------------------------------------------------------------------------------
    "PreprocessingStep.random_horizontal_flip": _impl(),
    "PreprocessingStep.ssd_random_crop": _impl("no operations: the OD API's seven default SSD crops"),
    "PreprocessingStep.random_crop_image": _impl(),
    "PreprocessingStep.random_adjust_brightness": _impl(),
    "PreprocessingStep.random_adjust_contrast": _impl(),
    "PreprocessingStep.random_adjust_saturation": _impl(),
    "PreprocessingStep.random_adjust_hue": _impl(),
    "PreprocessingStep.random_image_scale": _impl(),
    "SSDRandomCrop.operations": _impl(),
    "SSDRandomCropOperation.min_object_covered": _impl(),
    "SSDRandomCropOperation.min_aspect_ratio": _impl(),
    "SSDRandomCropOperation.max_aspect_ratio": _impl(),
    "SSDRandomCropOperation.min_area": _impl(),
    "SSDRandomCropOperation.max_area": _impl(),
    "SSDRandomCropOperation.overlap_thresh": _impl(),
    "SSDRandomCropOperation.random_coef": _impl(),
    "SSDRandomCropOperation.clip_boxes": _impl(),
    "RandomCropImage.min_object_covered": _impl(),
    "RandomCropImage.min_aspect_ratio": _impl(),
    "RandomCropImage.max_aspect_ratio": _impl(),
    "RandomCropImage.min_area": _impl(),
    "RandomCropImage.max_area": _impl(),
    "RandomCropImage.overlap_thresh": _impl(),
    "RandomCropImage.random_coef": _impl(),
    "RandomCropImage.clip_boxes": _impl(),
    "RandomAdjustBrightness.max_delta": _impl(minimum=0.0),
    "RandomAdjustContrast.min_delta": _impl(minimum=0.0),
    "RandomAdjustContrast.max_delta": _impl(minimum=0.0),
    "RandomAdjustSaturation.min_delta": _impl(minimum=0.0),
    "RandomAdjustSaturation.max_delta": _impl(minimum=0.0),
    "RandomAdjustHue.max_delta": _impl(minimum=0.0),
    "RandomImageScale.min_scale_ratio": _impl(minimum=0.0),
    "RandomImageScale.max_scale_ratio": _impl(minimum=0.0),
    # --- evaluation ----------------------------------------------------------------------------------------
    "EvalConfig.metrics_set": _impl("empty means coco_detection_metrics", allowed=("coco_detection_metrics",)),
    "EvalConfig.use_moving_averages": _impl(),
    "EvalConfig.num_examples": _no_effect(_DEPRECATED + "; TF2 evaluation reads the whole eval set"),
    "EvalConfig.max_evals": _no_effect(_DEPRECATED),
    # --- input readers -------------------------------------------------------------------------------------
    "InputReader.label_map_path": _impl(),
    "InputReader.tf_record_input_reader": _impl(),
    "TFRecordInputReader.input_path": _impl("files or glob patterns"),
    "InputReader.shuffle": _impl(),
    "InputReader.shuffle_buffer_size": _impl(minimum=1),
    "InputReader.num_epochs": _impl("0: repeat forever"),
    "InputReader.max_number_of_boxes": _impl(minimum=1),
    "InputReader.name": _no_effect("a label only"),
    "InputReader.num_readers": _no_effect(_READER_SPEED),
    "InputReader.num_parallel_batches": _no_effect(_READER_SPEED),
    "InputReader.num_prefetch_batches": _no_effect(_READER_SPEED),
    "InputReader.read_block_length": _no_effect(_READER_SPEED),
    "InputReader.filenames_shuffle_buffer_size": _no_effect(_READER_SPEED),
    "InputReader.queue_capacity": _no_effect(_DEPRECATED),
    "InputReader.min_after_dequeue": _no_effect(_DEPRECATED),
    "InputReader.prefetch_size": _no_effect(_DEPRECATED),
    "InputReader.num_parallel_map_calls": _no_effect(_DEPRECATED),
}

# Oneofs that must have a member chosen whenever their message is present (`Message.oneof_name`).
REQUIRED_ONEOFS: tuple[str, ...] = (
    "DetectionModel.model",
    "ImageResizer.image_resizer_oneof",
    "AnchorGenerator.anchor_generator_oneof",
    "BoxCoder.box_coder_oneof",
    "Matcher.matcher_oneof",
    "RegionSimilarityCalculator.region_similarity",
    "BoxPredictor.box_predictor_oneof",
    "Regularizer.regularizer_oneof",
    "Initializer.initializer_oneof",
    "ClassificationLoss.classification_loss",
    "LocalizationLoss.localization_loss",
    "Optimizer.optimizer",
    "LearningRate.learning_rate",
    "PreprocessingStep.preprocessing_step",
    "InputReader.input_reader",
)
