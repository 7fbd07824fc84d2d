"""`tfodkit export`: the SavedModel reproduces the real OD API's exported models and tfodkit's evaluation path.

Oracle: od_api_outputs.npz's `serving_*` arrays, what the OD API's own exported SavedModel returned for the
reference checkpoints (see ../shared/reference/od_api_tf2/README.md).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_tf2_fidelity import FPNLITE, REFERENCE, SSD
from test_trainer import TINY

from tfodkit.checkpoints.tf2_checkpoint import VALUE_SUFFIX
from tfodkit.cli import main
from tfodkit.config.loader import load_pipeline, parse_pipeline_text
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.export import saved_model as saved_model_module
from tfodkit.export.runtime import load_detector
from tfodkit.export.saved_model import INPUT_SIGNATURES, export_saved_model
from tfodkit.export.trained_model import MAX_LISTED, TrainedModel, load_trained_model
from tfodkit.inputs import eval_dataset, input_spec
from tfodkit.model.builder import build_ssd
from tfodkit.model.postprocessing import DETECTION_KEYS
from tfodkit.protos import pipeline_pb2
from tfodkit.training.checkpoints import TrainingCheckpoints
from tfodkit.training.optimizers import build_optimizer
from tfodkit.training.step import make_eval_step

TINY_STEP = 7  # the step of the tiny checkpoint (ckpt-7)
SCORE_KEYS = ("detection_scores", "raw_detection_scores", "detection_multiclass_scores")
BOX_KEYS = ("detection_boxes", "raw_detection_boxes")
INDEX_KEYS = ("detection_classes", "detection_anchor_indices", "num_detections")


def _cli(*argv: str) -> tuple[int, str, str]:
    """Run `tfodkit` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _numpy(outputs: dict) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in outputs.items()}


def _assert_boxes_close(ours: np.ndarray, theirs: np.ndarray, tolerance: float) -> None:
    """Decoding goes through exp(): compare boxes relative to their size (at least 1), as the README says."""
    assert ours.shape == theirs.shape
    assert float((np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))).max()) <= tolerance


def _assert_same_detections(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], box_tolerance: float) -> None:
    assert set(ours) == set(theirs) == set(DETECTION_KEYS)
    for key in SCORE_KEYS:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-5, err_msg=key)
    for key in INDEX_KEYS:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    for key in BOX_KEYS:
        _assert_boxes_close(ours[key], theirs[key], box_tolerance)


# --- the OD API's reference models -------------------------------------------------------------------------


def _export_reference(name: str, root: Path) -> dict:
    folder = REFERENCE / name
    out = root / name
    code, stdout, stderr = _cli(
        "export", "--pipeline_config_path", str(folder / "pipeline.config"),
        "--trained_checkpoint_dir", str(folder / "checkpoint"), "--output_directory", str(out),
        "--set", f"eval_input_reader[0].label_map_path={folder / 'label_map.pbtxt'}",
    )
    assert code == 0, stderr
    oracle = dict(np.load(folder / "od_api_outputs.npz"))
    loaded = tf.saved_model.load(str(out / "saved_model"))
    one_by_one = [_numpy(loaded(image[np.newaxis])) for image in oracle["input_uint8"]]
    stacked = {key: np.concatenate([result[key] for result in one_by_one]) for key in one_by_one[0]}
    return {"folder": folder, "out": out, "stdout": stdout, "oracle": oracle, "loaded": loaded, "ours": stacked}


@pytest.fixture(scope="module")
def ssd_export(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _export_reference(SSD, tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def fpnlite_export(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _export_reference(FPNLITE, tmp_path_factory.mktemp("reference"))


def _serving(oracle: dict) -> dict[str, np.ndarray]:
    return {key: oracle[f"serving_{key}"] for key in DETECTION_KEYS}


def test_ssd_reference_export_matches_od_api_saved_model(ssd_export: dict) -> None:
    oracle, ours = ssd_export["oracle"], ssd_export["ours"]
    # The OD API's exporter casts every output to float32, detection_anchor_indices included.
    assert {key: value.dtype for key, value in ours.items()} == {key: np.dtype(np.float32) for key in DETECTION_KEYS}
    assert ours["detection_boxes"].shape == (3, 100, 4)
    _assert_same_detections(ours, _serving(oracle), box_tolerance=1e-4)
    assert ours["num_detections"].min() > 0


def test_fpnlite_reference_export_matches_od_api_raw_outputs(fpnlite_export: dict) -> None:
    """FPNLite's top-100 are near-ties: compare raw outputs, counts and sorted scores, and check that each of our
    detections has the score the OD API gives its (anchor, class)."""
    oracle, ours = fpnlite_export["oracle"], fpnlite_export["ours"]
    theirs = _serving(oracle)
    assert {key: value.shape for key, value in ours.items()} == {key: value.shape for key, value in theirs.items()}
    np.testing.assert_allclose(ours["raw_detection_scores"], theirs["raw_detection_scores"], rtol=0, atol=1e-5)
    _assert_boxes_close(ours["raw_detection_boxes"], theirs["raw_detection_boxes"], 1e-4)
    np.testing.assert_array_equal(ours["num_detections"], theirs["num_detections"])
    np.testing.assert_allclose(ours["detection_scores"], theirs["detection_scores"], rtol=0, atol=1e-5)
    for image in range(3):
        anchors = ours["detection_anchor_indices"][image].astype(int)
        classes = ours["detection_classes"][image].astype(int)  # 1-based = column in raw scores (0: background)
        raw_scores = theirs["raw_detection_scores"][image]
        np.testing.assert_allclose(ours["detection_scores"][image], raw_scores[anchors, classes], atol=1e-5)
        np.testing.assert_allclose(ours["detection_multiclass_scores"][image], raw_scores[anchors], atol=1e-5)
        np.testing.assert_allclose(
            ours["detection_boxes"][image], np.clip(theirs["raw_detection_boxes"][image][anchors], 0, 1), atol=1e-4
        )


@pytest.mark.parametrize("export", ["ssd_export", "fpnlite_export"])
def test_a_batch_equals_one_image_at_a_time(export: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(export)
    batch = _numpy(result["loaded"](result["oracle"]["input_uint8"]))
    _assert_same_detections(batch, result["ours"], box_tolerance=1e-5)


def test_export_directory_signature_and_printed_usage(ssd_export: dict) -> None:
    folder, out, stdout, loaded = ssd_export["folder"], ssd_export["out"], ssd_export["stdout"], ssd_export["loaded"]
    assert sorted(path.name for path in out.iterdir()) == ["checkpoint", "label_map.pbtxt", "pipeline.config",
                                                          "saved_model"]
    assert (out / "label_map.pbtxt").read_bytes() == (folder / "label_map.pbtxt").read_bytes()
    written = parse_pipeline_text((out / "pipeline.config").read_text(), "pipeline.config")
    assert written.eval_input_reader[0].label_map_path == str(folder / "label_map.pbtxt")
    assert written.model == load_pipeline(folder / "pipeline.config").model
    # No scratch directories left beside the output.
    assert [path.name for path in out.parent.iterdir()] == [out.name]

    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert inputs == {"input_tensor": tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")}
    assert {key: spec.dtype for key, spec in signature.structured_outputs.items()} == {
        key: tf.float32 for key in DETECTION_KEYS}
    image = ssd_export["oracle"]["input_uint8"][:1]
    np.testing.assert_array_equal(signature(input_tensor=tf.constant(image))["detection_scores"],
                                  ssd_export["ours"]["detection_scores"][:1])

    for path in ("saved_model", "checkpoint/ckpt-0", "pipeline.config", "label_map.pbtxt"):
        assert str(out / path) in stdout
    # The printed snippet runs as printed.
    snippet = stdout.split("use it:\n", 1)[1]
    assert len(snippet.strip().splitlines()) == 3
    namespace = {"images_uint8": image}
    exec("\n".join(line.strip() for line in snippet.splitlines()), namespace)
    np.testing.assert_array_equal(namespace["detections"]["detection_scores"],
                                  ssd_export["ours"]["detection_scores"][:1])


def test_exported_checkpoint_reloads_with_the_same_weights(ssd_export: dict) -> None:
    out = ssd_export["out"]
    config = load_pipeline(out / "pipeline.config")
    trained = load_trained_model(config, out / "checkpoint")
    assert trained.prefix == str(out / "checkpoint" / "ckpt-0")
    detections = _numpy(trained.model.detect(ssd_export["oracle"]["input_uint8"][:1]))
    np.testing.assert_allclose(detections["detection_scores"], ssd_export["ours"]["detection_scores"][:1], atol=1e-6)


# --- a tiny tfodkit model on the demo set -------------------------------------------------------------------


def _spread_weights(model: keras.Model) -> None:
    """He-initialise every kernel (the predictors' with a small gain): an untrained SSD's feature maps vanish, so
    all its scores tie; these weights give spread scores and boxes that a wrong path cannot match by chance."""
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if not variable.path.endswith("kernel"):
            continue
        shape = tuple(variable.shape)
        depthwise = len(shape) == 4 and shape[-1] == 1
        fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
        gain = 0.5 if "Predictor" in variable.path else 2.0
        variable.assign(rng.normal(0.0, np.sqrt(gain / fan_in), shape).astype(np.float32))


@pytest.fixture(scope="module")
def tiny(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model with random weights saved as a training checkpoint (ckpt-7) and restored by the export loader."""
    root = tmp_path_factory.mktemp("tiny")
    config = load_pipeline(pipeline, TINY)
    model = build_ssd(config)
    _spread_weights(model)
    optimizer = build_optimizer(config.train_config.optimizer)
    optimizer.build(model.trainable_variables)  # as training builds it: the checkpoint's layout depends on it
    optimizer.iterations.assign(TINY_STEP)
    model_dir = root / "run"
    TrainingCheckpoints(model_dir, model, optimizer, tf.distribute.get_strategy()).save()
    trained = load_trained_model(config, model_dir)
    return {"root": root, "config": config, "model_dir": model_dir, "trained": trained, "saved": model}


def _val_records(config: pipeline_pb2.TrainEvalPipelineConfig) -> list[bytes]:
    files = list(input_spec(config, "eval").record_files)
    return [record.numpy() for record in tf.data.TFRecordDataset(files)]


def test_loader_restores_the_training_checkpoint(tiny: dict) -> None:
    trained: TrainedModel = tiny["trained"]
    assert trained.step == TINY_STEP
    assert trained.prefix == str(tiny["model_dir"] / f"ckpt-{TINY_STEP}")
    saved = {variable.path: variable.numpy() for variable in tiny["saved"].weights}
    restored = {variable.path: variable.numpy() for variable in trained.model.weights}
    assert saved.keys() == restored.keys()
    for path, value in saved.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)


def test_moving_averages_replace_the_weights_when_evaluation_uses_them(pipeline: Path, tmp_path: Path) -> None:
    config = load_pipeline(pipeline, TINY + ("train_config.optimizer.use_moving_average=true",
                                             "eval_config.use_moving_averages=true"))
    model = build_ssd(config)
    optimizer = build_optimizer(config.train_config.optimizer)
    for _ in range(2):  # the averages start at the first step's weights; the second step moves the weights on
        optimizer.apply_gradients([(tf.ones_like(v), v) for v in model.trainable_variables])
    TrainingCheckpoints(tmp_path, model, optimizer, tf.distribute.get_strategy()).save()
    raw = [v.numpy() for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    averages = [v.numpy() for v in model.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(raw, averages))

    trained = load_trained_model(config, tmp_path)
    assert trained.step == 2
    for variable, expected in zip(trained.model.trainable_variables, averages):
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=variable.path)


@pytest.fixture(scope="module")
def tiny_exports(tiny: dict) -> dict[str, object]:
    """The tiny checkpoint exported once per input type, loaded back."""
    loaded = {}
    for input_type in INPUT_SIGNATURES:
        result = export_saved_model(tiny["config"], tiny["trained"], tiny["root"] / "exported" / input_type, input_type)
        assert result.step == TINY_STEP and result.input_type == input_type
        loaded[input_type] = tf.saved_model.load(str(result.saved_model))
    return loaded


def test_the_saved_model_keeps_the_checkpoints_step(tiny: dict, tiny_exports: dict) -> None:
    """A non-trainable int64 `step` beside the callable: where `tfodkit evaluate --model` logs its summaries."""
    for loaded in tiny_exports.values():
        assert callable(loaded)
        assert (loaded.step.dtype, loaded.step.trainable, int(loaded.step.numpy())) == (tf.int64, False, TINY_STEP)
    assert load_detector(tiny["root"] / "exported" / "image_tensor").step == TINY_STEP


def test_exported_detections_equal_the_evaluation_path(tiny: dict, tiny_exports: dict) -> None:
    """The evaluation step (tfodkit evaluate's code) on the val split vs the SavedModel on the original images:
    the model resizes in the graph exactly as the input pipeline resizes for evaluation."""
    config, model = tiny["config"], tiny["trained"].model
    eval_step = make_eval_step(model, tf.distribute.get_strategy())
    evaluated = {}
    for features, labels in eval_dataset(config):
        _, detections = eval_step((features, labels))
        for index, source_id in enumerate(labels["source_id"].numpy()):
            evaluated[source_id] = {key: value[index].numpy() for key, value in detections.items()}
    decoder = ExampleDecoder()
    records = _val_records(config)
    assert len(evaluated) == len(records) >= 4
    exported = tiny_exports["image_tensor"]
    for record in records:
        decoded = decoder(record)
        assert tuple(decoded["image"].shape[:2]) != model.image_size  # resized in the graph
        ours = _numpy(exported(decoded["image"][tf.newaxis]))
        theirs = {key: value[np.newaxis].astype(np.float32) for key, value in
                  evaluated[decoded["source_id"].numpy()].items()}
        _assert_same_detections(ours, theirs, box_tolerance=1e-5)
        np.testing.assert_allclose(ours["detection_boxes"], theirs["detection_boxes"], rtol=0, atol=1e-5)


def test_every_input_type_gives_the_same_detections(tiny: dict, tiny_exports: dict) -> None:
    records = _val_records(tiny["config"])
    decoder = ExampleDecoder()
    images = [decoder(record)["image"].numpy() for record in records]
    encoded = [tf.io.encode_jpeg(image).numpy() if i % 2 else tf.io.encode_png(image).numpy()
               for i, image in enumerate(images)]
    decoded_encoded = [tf.io.decode_image(data, channels=3).numpy() for data in encoded]
    assert len({image.shape for image in images}) > 1  # a batch of strings may mix sizes
    # String inputs: one batch of all images; tensor inputs: one image at a time (a batch shares a size).
    by_example = _numpy(tiny_exports["tf_example"](tf.constant(records)))
    by_encoded = _numpy(tiny_exports["encoded_image_string_tensor"](tf.constant(encoded)))
    for index, image in enumerate(images):
        uint8 = _numpy(tiny_exports["image_tensor"](image[np.newaxis]))
        floats = _numpy(tiny_exports["float_image_tensor"](image[np.newaxis].astype(np.float32)))
        _assert_same_detections(floats, uint8, box_tolerance=1e-5)
        _assert_same_detections({key: value[index:index + 1] for key, value in by_example.items()}, uint8,
                                box_tolerance=1e-5)
        # JPEG is lossy: compare with the same model on the decoded JPEG/PNG pixels.
        expected = _numpy(tiny_exports["image_tensor"](decoded_encoded[index][np.newaxis]))
        _assert_same_detections({key: value[index:index + 1] for key, value in by_encoded.items()}, expected,
                                box_tolerance=1e-5)


def test_cli_overwrite_config_override_and_named_checkpoint(tiny: dict, pipeline: Path) -> None:
    out = tiny["root"] / "overwritten"
    out.mkdir()
    (out / "old.txt").write_text("old export")
    args = ["export", "--pipeline_config_path", str(pipeline), "--trained_checkpoint_dir", str(tiny["model_dir"]),
            "--output_directory", str(out), "--input_type", "float_image_tensor", "--checkpoint", f"ckpt-{TINY_STEP}",
            "--config_override", "model { ssd { post_processing { batch_non_max_suppression { "
                                 "max_detections_per_class: 20 max_total_detections: 20 } } } }"]
    args += [arg for override in TINY for arg in ("--set", override)]

    code, _, stderr = _cli(*args)
    assert code == 1
    assert f"--output_directory {out}: already exists; choose another or pass --overwrite" in stderr
    assert [path.name for path in out.iterdir()] == ["old.txt"]
    assert (out / "old.txt").read_text() == "old export"

    code, stdout, stderr = _cli(*args, "--overwrite")
    assert code == 0, stderr
    assert f"exported {tiny['model_dir'] / f'ckpt-{TINY_STEP}'} (step {TINY_STEP})" in stdout
    assert not (out / "old.txt").exists()
    written = parse_pipeline_text((out / "pipeline.config").read_text(), "pipeline.config")
    assert written.model.ssd.post_processing.batch_non_max_suppression.max_total_detections == 20
    assert written.model.ssd.feature_extractor.depth_multiplier == pytest.approx(0.35)
    loaded = tf.saved_model.load(str(out / "saved_model"))
    image = np.full((1, 50, 70, 3), 128.0, np.float32)
    outputs = loaded(image)
    assert outputs["detection_boxes"].shape == (1, 20, 4)
    reference = _numpy(tiny["trained"].model.detect(image))
    np.testing.assert_allclose(outputs["detection_scores"], reference["detection_scores"][:, :20], atol=1e-5)
    assert sorted(path.name for path in out.parent.iterdir() if path.name.startswith(".")) == []


# --- bad input: each names the problem and leaves nothing behind ---------------------------------------------


def _export_args(pipeline: Path, checkpoint_dir: Path, out: Path, *more: str) -> list[str]:
    args = ["export", "--pipeline_config_path", str(pipeline), "--trained_checkpoint_dir", str(checkpoint_dir),
            "--output_directory", str(out)]
    return args + [arg for override in TINY for arg in ("--set", override)] + list(more)


def test_checkpoint_of_another_model_names_the_mismatched_variables(tiny: dict, pipeline: Path) -> None:
    out = tiny["root"] / "bad" / "mismatch"
    args = _export_args(pipeline, tiny["model_dir"], out, "--set", "model.ssd.feature_extractor.depth_multiplier=0.5")
    code, _, stderr = _cli(*args)
    assert code == 1
    prefix = tiny["model_dir"] / f"ckpt-{TINY_STEP}"
    assert f"{prefix}: does not match the model of this pipeline.config" in stderr
    # Each listed variable: its checkpoint key, the Keras variable it holds and its shape in the checkpoint (as
    # stored, and as the depth_multiplier 0.35 model has it) and in the depth_multiplier 0.5 model.
    stored = dict(tf.train.list_variables(str(prefix)))
    trained_shapes = {variable.path: list(variable.shape) for variable in tiny["trained"].model.weights}
    listed = re.findall(r"^  (\S+) \((\S+)\): checkpoint \[([\d, ]+)\], model \[([\d, ]+)\]$", stderr, re.MULTILINE)
    assert len(listed) == MAX_LISTED
    for key, path, in_checkpoint, in_model in listed:
        shape = [int(d) for d in in_checkpoint.split(",")]
        assert shape == stored[key + VALUE_SUFFIX] == trained_shapes[path]
        assert in_model != in_checkpoint
    total = int(re.search(r"(\d+) mismatched variable\(s\), first:", stderr).group(1))
    assert f"... and {total - MAX_LISTED} more" in stderr
    assert not out.exists() and not out.parent.exists()


def test_missing_empty_and_unknown_checkpoints(tiny: dict, pipeline: Path) -> None:
    out = tiny["root"] / "bad" / "out"
    missing = tiny["root"] / "no-such-run"
    code, _, stderr = _cli(*_export_args(pipeline, missing, out))
    assert code == 1 and f"--trained_checkpoint_dir {missing}: no such directory" in stderr

    empty = tiny["root"] / "empty-run"
    empty.mkdir()
    code, _, stderr = _cli(*_export_args(pipeline, empty, out))
    assert code == 1 and f"--trained_checkpoint_dir {empty}: no checkpoint in this directory" in stderr

    code, _, stderr = _cli(*_export_args(pipeline, tiny["model_dir"], out, "--checkpoint", "ckpt-9"))
    assert code == 1
    assert "--checkpoint ckpt-9: no such checkpoint" in stderr
    assert f"checkpoints in {tiny['model_dir']}: ckpt-{TINY_STEP}" in stderr

    code, _, stderr = _cli(*_export_args(pipeline, tiny["model_dir"], out, "--config_override", "model { ssd {"))
    assert code == 1 and "--config_override: " in stderr
    assert not out.exists() and not out.parent.exists()
    assert tf.train.latest_checkpoint(str(tiny["model_dir"])) == str(tiny["model_dir"] / f"ckpt-{TINY_STEP}")


def test_a_failed_export_leaves_the_previous_one_untouched(tiny: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_config) -> str:
        raise OSError("disk full")

    parent = tiny["root"] / "failed"
    previous = parent / "model"
    previous.mkdir(parents=True)
    (previous / "old.txt").write_text("old export")
    # Fails after saved_model/ and checkpoint/ are written into the scratch directory.
    monkeypatch.setattr(saved_model_module, "pipeline_text", fail)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(tiny["config"], tiny["trained"], previous, overwrite=True)
    assert [path.name for path in parent.iterdir()] == ["model"]
    assert [path.name for path in previous.iterdir()] == ["old.txt"]
    assert (previous / "old.txt").read_text() == "old export"
