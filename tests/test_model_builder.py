"""build_ssd: zoo configs build unchanged, options reach the layers, unsupported fields are rejected by name."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from google.protobuf import text_format

from tfodkit.errors import TfodkitError
from tfodkit.model.builder import build_ssd
from tfodkit.protos import pipeline_pb2

CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "od_api_configs"

SMALL_SSD = """
model { ssd {
  num_classes: 3
  image_resizer { fixed_shape_resizer { height: 96 width: 96 } }
  feature_extractor {
    type: "ssd_mobilenet_v2_keras" depth_multiplier: 0.35 min_depth: 16
    conv_hyperparams {
      regularizer { l2_regularizer { weight: 0.001 } }
      initializer { truncated_normal_initializer { stddev: 0.03 } }
      activation: RELU_6
      batch_norm { decay: 0.97 epsilon: 0.001 scale: true train: false }
    }
    override_base_feature_extractor_hyperparams: true
  }
  box_coder { faster_rcnn_box_coder {} }
  matcher { argmax_matcher {} }
  similarity_calculator { iou_similarity {} }
  box_predictor { convolutional_box_predictor {
    conv_hyperparams {
      regularizer { l2_regularizer { weight: 0.001 } }
      initializer { random_normal_initializer { stddev: 0.01 } }
      batch_norm { scale: true }
    }
    use_dropout: false kernel_size: 3 use_depthwise: true class_prediction_bias_init: -4.6
  } }
  anchor_generator { ssd_anchor_generator { num_layers: 6 aspect_ratios: [1.0, 2.0, 0.5] } }
  post_processing { batch_non_max_suppression { score_threshold: 0.1 iou_threshold: 0.5
    max_detections_per_class: 10 max_total_detections: 20 } score_converter: SIGMOID }
  loss {
    localization_loss { weighted_smooth_l1 {} }
    classification_loss { weighted_sigmoid_focal { gamma: 2.0 alpha: 0.25 } }
  }
} }
"""


def _config(text: str = SMALL_SSD) -> pipeline_pb2.TrainEvalPipelineConfig:
    return text_format.Parse(text, pipeline_pb2.TrainEvalPipelineConfig())


@pytest.fixture(scope="module")
def small_model():
    return build_ssd(_config())


def test_depth_multiplier_min_depth_and_names(small_model) -> None:
    extractor = small_model.feature_extractor
    backbone = extractor.get_layer("classification_backbone")
    # Keras application names; the OD API keeps the last conv at 1280 * alpha when alpha < 1.
    assert backbone.get_layer("Conv_1").filters == 448
    assert backbone.get_layer("block_13_expand_relu") is not None
    assert not [layer for layer in backbone.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    assert backbone.get_layer("block_1_depthwise").padding == "same"
    # Extra layers: 512 * 0.35 = 179, 256 * 0.35 = 89; 1x1 layers at half depth, at least min_depth.
    assert extractor.get_layer("layer_19_2_Conv2d_2_3x3_s2_179_conv").filters == 179
    assert extractor.get_layer("layer_19_1_Conv2d_5_1x1_22_conv").filters == 22
    assert [tuple(o.shape[1:3]) for o in extractor.outputs] == [(6, 6), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)]


def test_hyperparams_reach_layers(small_model) -> None:
    backbone = small_model.feature_extractor.get_layer("classification_backbone")
    bn = backbone.get_layer("block_3_project_BN")
    assert bn.momentum == pytest.approx(0.97) and not bn.trainable  # batch_norm.train: false freezes it
    conv = backbone.get_layer("block_3_project")
    assert conv.kernel_regularizer.l2 == pytest.approx(0.0005)  # OD API: keras L2 weight is half the config's
    assert conv.kernel_initializer.stddev == pytest.approx(0.03)
    head = small_model.box_predictor.get_layer("BoxPredictor_0_ClassPredictor")
    np.testing.assert_allclose(head.bias.numpy(), -4.6, rtol=1e-6)
    assert head.kernel.shape[:2] == (1, 1)
    depthwise = small_model.box_predictor.get_layer("BoxPredictor_0_ClassPredictor_depthwise")
    assert depthwise.kernel_size == (3, 3)
    # 3 shapes in the lowest layer, then 3 ratios + interpolated = 4.
    assert small_model.anchors.shape[0] == 36 * 3 + (9 + 4 + 1 + 1 + 1) * 4


def test_small_model_runs_end_to_end(small_model) -> None:
    import tensorflow as tf

    images = np.random.default_rng(0).integers(0, 255, (2, 120, 80, 3)).astype(np.uint8)
    predictions = small_model(images, training=False)
    assert predictions["class_predictions_with_background"].shape == (2, small_model.anchors.shape[0], 4)
    detections = small_model.postprocess(predictions)
    assert detections["detection_boxes"].shape == (2, 20, 4)
    losses = small_model.compute_losses(
        predictions, tf.constant([[[0.1, 0.1, 0.6, 0.5]]] * 2), tf.constant([[3]] * 2), tf.ones([2, 1])
    )
    assert set(losses) == {
        "Loss/localization_loss", "Loss/classification_loss", "Loss/regularization_loss", "Loss/total_loss"
    }
    assert all(np.isfinite(v.numpy()) for v in losses.values())
    assert losses["Loss/regularization_loss"].numpy() > 0


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("fixed_shape_resizer { height: 96 width: 96 }", "keep_aspect_ratio_resizer {}", "image_resizer"),
        ('type: "ssd_mobilenet_v2_keras"', 'type: "ssd_resnet50_v1_fpn_keras"', "feature_extractor.type"),
        ("weighted_smooth_l1 {}", "weighted_l2 {}", "localization_loss"),
        ("max_total_detections: 20 }", "max_total_detections: 20 use_class_agnostic_nms: true }", "agnostic"),
        ("use_dropout: false", "use_dropout: false apply_sigmoid_to_scores: true", "apply_sigmoid_to_scores"),
        ("num_classes: 3", "num_classes: 3 add_background_class: false", "add_background_class"),
        ("activation: RELU_6", "activation: RELU_6 op: FC", "op"),
        ("alpha: 0.25 } }", "alpha: 0.25 } } hard_example_miner {}", "hard_example_miner"),
    ],
)
def test_unsupported_fields_are_rejected_by_name(old: str, new: str, field: str) -> None:
    assert old in SMALL_SSD
    with pytest.raises(TfodkitError, match=field):
        build_ssd(_config(SMALL_SSD.replace(old, new)))


def test_builder_and_config_loader_reject_the_same_fields_in_the_same_words() -> None:
    """One source of truth: what build_ssd rejects is what check_pipeline (load_pipeline's check) reports."""
    from tfodkit.config.loader import check_pipeline

    config = _config(SMALL_SSD.replace("num_classes: 3", "num_classes: 3 add_background_class: false").replace(
        "max_total_detections: 20 }", "max_total_detections: 20 use_class_agnostic_nms: true }"))
    with pytest.raises(TfodkitError) as loader_error:
        check_pipeline(config, "config")
    with pytest.raises(TfodkitError) as builder_error:
        build_ssd(config)
    reported = [line.strip() for line in str(loader_error.value).splitlines()[1:]]
    assert len(reported) == 2 and all(line.startswith("model.ssd.") for line in reported)
    assert [line.strip() for line in str(builder_error.value).splitlines()[1:]] == reported
    assert str(builder_error.value).splitlines()[0] == "model: 2 unsupported or invalid setting(s):"


@pytest.mark.skipif(not CONFIGS.is_dir(), reason=f"OD API zoo configs not found at {CONFIGS}")
@pytest.mark.parametrize(
    "name, anchors",
    [("ssdlite_mobilenet_v2_coco.config", 1917), ("ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8.config", 51150)],
)
def test_zoo_configs_build_unchanged(name: str, anchors: int) -> None:
    from tfodkit.config.loader import load_pipeline

    model = build_ssd(load_pipeline(CONFIGS / name))
    assert model.anchors.shape == (anchors, 4)
    assert model.box_predictor.outputs[1].shape[-1] == model.num_classes + 1


@pytest.mark.skipif(not CONFIGS.is_dir(), reason=f"OD API zoo configs not found at {CONFIGS}")
def test_fpn_and_anchor_levels_must_agree() -> None:
    text = (CONFIGS / "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config").read_text()
    anchors_block = text.index("multiscale_anchor_generator")
    shifted = text[:anchors_block] + text[anchors_block:].replace("max_level: 7", "max_level: 6", 1)
    with pytest.raises(TfodkitError, match="multiscale_anchor_generator: levels 3..6"):
        build_ssd(_config(shifted))


@pytest.mark.skipif(not CONFIGS.is_dir(), reason=f"OD API zoo configs not found at {CONFIGS}")
def test_fpn_needs_an_image_size_its_top_down_path_can_sum() -> None:
    text = (CONFIGS / "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config").read_text()
    with pytest.raises(TfodkitError, match="divisible by 32"):
        build_ssd(_config(text.replace("height: 320", "height: 300")))
