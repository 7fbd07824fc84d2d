"""Our SSDs, built from the OD API's own pipeline.config and loaded from its TF2 checkpoints, reproduce its outputs.

The oracle is od_api_outputs.npz written by the real TF2 OD API (see ../shared/reference/od_api_tf2/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "od_api_tf2"
SSD = "ssd_mobilenet_v2_320x320_coco17_tpu-8"
FPNLITE = "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"

pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"TF2 OD API reference artefacts not found at {REFERENCE}"
)


def _run(name: str) -> dict:
    from tfodkit.checkpoints.tf2_checkpoint import load_tf2_checkpoint
    from tfodkit.config.loader import load_pipeline
    from tfodkit.model.builder import build_ssd

    folder = REFERENCE / name
    model = build_ssd(load_pipeline(folder / "pipeline.config"))
    report = load_tf2_checkpoint(model, folder / "checkpoint" / "ckpt-0")
    oracle = dict(np.load(folder / "od_api_outputs.npz"))
    predictions = model(oracle["input_uint8"], training=False)
    detections = {key: value.numpy() for key, value in model.postprocess(predictions).items()}
    return {"model": model, "report": report, "oracle": oracle, "predictions": predictions, "detections": detections}


@pytest.fixture(scope="module")
def ssd() -> dict:
    return _run(SSD)


@pytest.fixture(scope="module")
def fpnlite() -> dict:
    return _run(FPNLITE)


def _assert_relative(ours: np.ndarray, theirs: np.ndarray, tolerance: float) -> None:
    """Max abs difference relative to the array's magnitude (float32 noise through 100+ layers)."""
    assert ours.shape == theirs.shape
    scale = max(float(np.abs(theirs).max()), 1e-12)
    assert float(np.abs(ours - theirs).max()) / scale <= tolerance


@pytest.mark.parametrize("run", ["ssd", "fpnlite"])
def test_checkpoint_loads_every_variable(run: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(run)
    model, report = result["model"], result["report"]
    assert len(report.loaded) == len(model.weights)
    assert {path for _, path in report.loaded} == {v.path for v in model.weights}
    assert all(key.startswith("model/") for key, _ in report.loaded)
    assert not report.other_parts
    assert "save_counter/.ATTRIBUTES/VARIABLE_VALUE" in report.not_model_variables


@pytest.mark.parametrize("run", ["ssd", "fpnlite"])
def test_preprocessing_and_anchors_match(run: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(run)
    oracle, predictions = result["oracle"], result["predictions"]
    np.testing.assert_allclose(predictions["preprocessed_inputs"].numpy(), oracle["preprocessed"], rtol=0, atol=1e-6)
    anchors = predictions["anchors"].numpy()
    assert anchors.shape == oracle["anchors"].shape
    np.testing.assert_allclose(anchors, oracle["anchors"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("run", ["ssd", "fpnlite"])
def test_feature_maps_match(run: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(run)
    oracle, maps = result["oracle"], result["predictions"]["feature_maps"]
    expected = sorted(k for k in oracle if k.startswith("feature_map_"))
    assert len(maps) == len(expected)
    for index, ours in enumerate(maps):
        _assert_relative(ours.numpy(), oracle[f"feature_map_{index}"], 1e-4)


@pytest.mark.parametrize("run", ["ssd", "fpnlite"])
def test_box_encodings_and_logits_match(run: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(run)
    oracle, predictions = result["oracle"], result["predictions"]
    _assert_relative(predictions["box_encodings"].numpy(), oracle["box_encodings"], 1e-4)
    _assert_relative(
        predictions["class_predictions_with_background"].numpy(), oracle["class_predictions_with_background"], 1e-4
    )


@pytest.mark.parametrize("run", ["ssd", "fpnlite"])
def test_raw_detections_match(run: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(run)
    oracle, detections = result["oracle"], result["detections"]
    np.testing.assert_allclose(
        detections["raw_detection_scores"], oracle["postprocess_raw_detection_scores"], rtol=0, atol=1e-5
    )
    # Decoding goes through exp(): compare boxes relative to their size (at least 1).
    theirs = oracle["postprocess_raw_detection_boxes"]
    relative = np.abs(detections["raw_detection_boxes"] - theirs) / np.maximum(1.0, np.abs(theirs))
    assert relative.max() <= 1e-4


def test_ssd_detections_above_threshold_match(ssd: dict) -> None:
    oracle, ours = ssd["oracle"], ssd["detections"]
    for image in range(oracle["input_uint8"].shape[0]):
        keep = oracle["serving_detection_scores"][image] > 0.3
        count = int(keep.sum())
        assert count > 0
        assert (ours["detection_scores"][image] > 0.3).sum() == count
        np.testing.assert_allclose(
            ours["detection_scores"][image, :count], oracle["serving_detection_scores"][image, :count], atol=1e-5
        )
        np.testing.assert_array_equal(
            ours["detection_classes"][image, :count], oracle["serving_detection_classes"][image, :count]
        )
        np.testing.assert_allclose(
            ours["detection_boxes"][image, :count], oracle["serving_detection_boxes"][image, :count], atol=1e-3
        )
        np.testing.assert_array_equal(
            ours["detection_anchor_indices"][image, :count],
            oracle["postprocess_detection_anchor_indices"][image, :count],
        )
        np.testing.assert_allclose(
            ours["detection_multiclass_scores"][image, :count],
            oracle["serving_detection_multiclass_scores"][image, :count],
            atol=1e-5,
        )
    np.testing.assert_array_equal(ours["num_detections"], oracle["serving_num_detections"])


def test_fpnlite_detections_are_consistent_with_raw_outputs(fpnlite: dict) -> None:
    """FPNLite's top-100 are near-ties, so check our picks against the OD API's raw scores instead of its order."""
    oracle, ours = fpnlite["oracle"], fpnlite["detections"]
    np.testing.assert_array_equal(ours["num_detections"], oracle["serving_num_detections"])
    for image in range(oracle["input_uint8"].shape[0]):
        anchors = ours["detection_anchor_indices"][image]
        classes = ours["detection_classes"][image].astype(int)
        their_scores = oracle["postprocess_raw_detection_scores"][image][anchors, classes]
        np.testing.assert_allclose(ours["detection_scores"][image], their_scores, atol=1e-5)
        np.testing.assert_allclose(
            ours["detection_scores"][image], oracle["serving_detection_scores"][image], atol=1e-5
        )


def test_loading_another_architecture_lists_the_mismatch(ssd: dict) -> None:
    from tfodkit.checkpoints.tf2_checkpoint import load_tf2_checkpoint
    from tfodkit.errors import TfodkitError

    with pytest.raises(TfodkitError) as error:
        load_tf2_checkpoint(ssd["model"], REFERENCE / FPNLITE / "checkpoint")
    message = str(error.value)
    assert "unused checkpoint variable: model/_feature_extractor/_fpn_features_generator" in message
    assert "model variable not in checkpoint: BoxPredictor_0_BoxEncodingPredictor/kernel" in message


def test_feature_extractor_only_load_leaves_the_predictor(ssd: dict) -> None:
    from tfodkit.checkpoints.tf2_checkpoint import load_tf2_checkpoint

    report = load_tf2_checkpoint(ssd["model"], REFERENCE / SSD / "checkpoint", parts=["feature_extractor"])
    assert len(report.loaded) == len(ssd["model"].feature_extractor.weights)
    assert report.other_parts and all(key.startswith("model/_box_predictor/") for key in report.other_parts)
