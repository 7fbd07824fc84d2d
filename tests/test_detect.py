"""`tfodkit detect` and `tfodkit evaluate --model` on a tiny model trained until it finds the demo digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from overfit_run import NUM_STEPS, OVERRIDES, demo_pipeline
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfodkit import label_map
from tfodkit.cli import main
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.errors import TfodkitError
from tfodkit.evaluation.coco_metrics import MAP_50, PER_CLASS_AP_50_PREFIX, SUMMARY_METRICS
from tfodkit.export.runtime import load_detector
from tfodkit.training.trainer import TrainOptions, train

PascalVocReader = pytest.importorskip("libs.pascal_voc_io", reason="PyPI labelimg is not installed").PascalVocReader

MIN_SCORE = 0.1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 16-image demo set (8 train, 4 val, 4 test), a run trained on it and its SavedModel export. The eval
    reader reads the training records, which the model has learnt, so the eval metrics are far from 0."""
    root = tmp_path_factory.mktemp("detect")
    pipeline = demo_pipeline(root, {"train": 0.5, "val": 0.25, "test": 0.25}, eval_records="train-*")
    result = train(TrainOptions(str(pipeline), str(root / "run"), OVERRIDES, num_train_steps=NUM_STEPS,
                                checkpoint_every_n=NUM_STEPS, eval_every_n=0, steps_per_call=10, seed=0,
                                progress=False), report=lambda line: None)
    exported = root / "exported"
    assert main(["export", "--pipeline_config_path", str(root / "run" / "pipeline.config"),
                 "--trained_checkpoint_dir", str(root / "run"), "--output_directory", str(exported)]) == 0
    manifest = json.loads((root / "records" / "manifest.json").read_text())
    return {"root": root, "run": root / "run", "exported": exported, "manifest": manifest,
            "map_50": result.evaluation.map_50}


def _split_images(trained: dict, split: str, folder: Path, count: int) -> list[Path]:
    """Copies of the first `count` demo JPEGs of one split in `folder`."""
    folder.mkdir()
    names = [image["file"] for image in trained["manifest"]["images"] if image["split"] == split][:count]
    return [Path(shutil.copy(trained["root"] / "demo" / name, folder / name)) for name in names]


def _decoded(path: Path) -> np.ndarray:
    return tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy()


def test_detect_writes_drawings_json_and_labelimg_xml_that_round_trip(trained: dict, tmp_path: Path, capsys):
    images = _split_images(trained, "train", tmp_path / "images", 4)  # learnt: detected with high scores
    (tmp_path / "images" / "notes.jpg").write_text("not an image")
    kept_xml = images[0].with_suffix(".xml")
    kept_xml.write_text("<annotation><filename>mine</filename></annotation>")  # a person's labels: untouched
    out = tmp_path / "out"
    code = main(["detect", "--model", str(trained["exported"]), "--images", str(tmp_path / "images"),
                 "--out", str(out), "--min-score", str(MIN_SCORE), "--labelimg", "--no_progress"])
    printed = capsys.readouterr().out
    assert code == 1  # notes.jpg could not be read; the images were processed all the same
    assert f"{tmp_path / 'images' / 'notes.jpg'}: not a readable image" in printed
    assert kept_xml.read_text() == "<annotation><filename>mine</filename></annotation>"
    assert "left unchanged" in printed and str(kept_xml) in printed

    detector = load_detector(trained["exported"])
    names = label_map.load(trained["exported"] / "label_map.pbtxt").names_by_id()
    counts = []
    for path in images:
        image = _decoded(path)
        height, width = image.shape[:2]
        (found,) = detector.detect([image])
        keep = found["scores"] >= MIN_SCORE
        boxes, classes, scores = found["boxes"][keep], found["classes"][keep], found["scores"][keep]
        counts.append((int(keep.sum()), len(keep)))
        drawing = out / f"{path.stem}.png"
        assert str(drawing) in printed
        assert Image.open(drawing).size == (width, height)
        record = json.loads((out / f"{path.stem}.json").read_text())
        assert (record["image"], record["width"], record["height"]) == (str(path), width, height)
        assert [d["class_id"] for d in record["detections"]] == classes.tolist()
        assert [d["class_name"] for d in record["detections"]] == [names[c] for c in classes]
        np.testing.assert_array_equal([d["score"] for d in record["detections"]], scores)
        np.testing.assert_array_equal(
            np.reshape([[d["box"][k] for k in ("ymin", "xmin", "ymax", "xmax")] for d in record["detections"]],
                       (-1, 4)), boxes)
        pixels = boxes.reshape(-1, 4)[:, [1, 0, 3, 2]].astype(np.float64) * [width, height, width, height]
        np.testing.assert_allclose(
            np.reshape([[d["box_pixels"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in record["detections"]],
                       (-1, 4)), pixels, rtol=1e-12)
        if path == images[0]:
            continue
        # LabelImg's own reader sees the same boxes, in integer pixels, and the same class names.
        shapes = PascalVocReader(str(path.with_suffix(".xml"))).get_shapes()
        corners = np.rint(pixels).astype(int)
        wide = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
        assert [shape[0] for shape in shapes] == [names[c] for c in classes[wide]]
        assert [(*shape[1][0], *shape[1][2]) for shape in shapes] == [tuple(c) for c in corners[wide]]
        assert not any(shape[4] for shape in shapes)  # not difficult
    assert sum(kept for kept, _ in counts) > 0 and all(kept < total for kept, total in counts), counts

    # make-tfrecords reads the pre-labels back with the same boxes.
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    for path in images[1:]:
        shutil.copy(path, labelled / path.name)
        shutil.copy(path.with_suffix(".xml"), labelled / path.with_suffix(".xml").name)
    assert main(["make-tfrecords", str(labelled), "--out", str(tmp_path / "records"), "--workers", "1",
                 "--split", "train=1"]) == 0
    ids = label_map.load(tmp_path / "records" / "label_map.pbtxt").ids
    decoder = ExampleDecoder(label_map.load(tmp_path / "records" / "label_map.pbtxt"))
    for serialized in tf.data.TFRecordDataset([str(p) for p in (tmp_path / "records").glob("train-*")]):
        record = decoder(serialized)
        stem = Path(record["filename"].numpy().decode()).stem
        detections = json.loads((out / f"{stem}.json").read_text())["detections"]
        height, width = int(record["height"]), int(record["width"])
        written = [d for d in detections if round(d["box_pixels"]["xmax"]) > round(d["box_pixels"]["xmin"])
                   and round(d["box_pixels"]["ymax"]) > round(d["box_pixels"]["ymin"])]
        expected = np.array([[d["box"][k] for k in ("ymin", "xmin", "ymax", "xmax")] for d in written]).reshape(-1, 4)
        # Within the half pixel the XML's integer corners round to, and exactly those corners.
        np.testing.assert_allclose(record["boxes"].numpy(), expected,
                                   atol=0.5 / min(height, width) + 1e-6)
        scale = np.array([height, width, height, width])
        np.testing.assert_allclose(record["boxes"].numpy() * scale, np.rint(expected * scale), atol=1e-3)
        assert record["classes"].numpy().tolist() == [ids[d["class_name"]] for d in written]

    # --overwrite replaces the existing XML; an image given as a file works as a folder does.
    assert main(["detect", "--model", str(trained["exported"]), "--images", str(images[0]), "--out", str(out),
                 "--min-score", str(MIN_SCORE), "--labelimg", "--overwrite", "--no_progress"]) == 0
    shapes = PascalVocReader(str(kept_xml)).get_shapes()
    assert len(shapes) == sum(1 for _ in json.loads((out / f"{images[0].stem}.json").read_text())["detections"])


def test_detect_writes_xml_into_labelimg_dir(trained: dict, tmp_path: Path):
    (image,) = _split_images(trained, "test", tmp_path / "images", 1)
    assert main(["detect", "--model", str(trained["exported"] / "saved_model"), "--images", str(image),
                 "--out", str(tmp_path / "out"), "--min-score", "0", "--labelimg-dir", str(tmp_path / "xml"),
                 "--no_progress"]) == 0
    assert not image.with_suffix(".xml").exists()
    shapes = PascalVocReader(str(tmp_path / "xml" / f"{image.stem}.xml")).get_shapes()
    assert len(shapes) > 0


def _scalars(directory: Path) -> tuple[dict[str, float], set[str]]:
    """(scalar tag -> value, image tags) of the event files in a directory."""
    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    scalars, images = {}, set()
    for tag in events.Tags()["tensors"]:
        plugin = events.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            (event,) = events.Tensors(tag)
            scalars[tag] = float(tf.make_ndarray(event.tensor_proto))
        elif plugin == "images":
            images.add(tag)
    return scalars, images


def _steps(directory: Path) -> set[int]:
    """The steps the summaries in a directory's event files are logged at."""
    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    return {event.step for tag in events.Tags()["tensors"] for event in events.Tensors(tag)}


@pytest.fixture(scope="module")
def saved_model_eval(trained: dict) -> tuple[dict[str, float], set[str]]:
    """`tfodkit evaluate --model` of the SavedModel export: its eval/ scalars and image tags."""
    assert main(["evaluate", "--model", str(trained["exported"])]) == 0
    return _scalars(trained["exported"] / "eval_val" / "eval")


def test_evaluate_model_gives_the_checkpoints_metrics_and_tags(trained: dict, saved_model_eval, tmp_path: Path):
    assert main(["evaluate", "--pipeline_config_path", str(trained["run"] / "pipeline.config"),
                 "--checkpoint_dir", str(trained["run"]), "--model_dir", str(tmp_path / "checkpoint")]) == 0
    checkpoint, checkpoint_images = _scalars(tmp_path / "checkpoint" / "eval")
    exported, exported_images = saved_model_eval
    coco = {tag: value for tag, value in checkpoint.items()
            if tag in SUMMARY_METRICS or tag.startswith(PER_CLASS_AP_50_PREFIX)}
    assert set(exported) == set(coco) and len(coco) == len(SUMMARY_METRICS) + 10
    for tag, value in coco.items():
        assert exported[tag] == pytest.approx(value, abs=1e-6), tag
    assert exported_images == checkpoint_images and exported_images
    assert exported[MAP_50] == pytest.approx(trained["map_50"], abs=1e-6) and exported[MAP_50] > 0.3
    # Logged at the exported checkpoint's step, as the checkpoint's own evaluation is; no train/ run beside.
    assert load_detector(trained["exported"]).step == NUM_STEPS
    assert _steps(trained["exported"] / "eval_val" / "eval") == _steps(tmp_path / "checkpoint" / "eval") == {NUM_STEPS}
    assert sorted(path.name for path in (trained["exported"] / "eval_val").iterdir()) == ["eval"]


def test_evaluate_model_runs_the_tflite_export(trained: dict, saved_model_eval, tmp_path: Path, capsys):
    tflite = tmp_path / "tflite"
    assert main(["export-tflite", "--pipeline_config_path", str(trained["run"] / "pipeline.config"),
                 "--trained_checkpoint_dir", str(trained["run"]), "--output_directory", str(tflite)]) == 0
    assert main(["evaluate", "--model", str(tflite / "model.tflite")]) == 0
    assert f"eval/ summaries written under {tflite / 'eval_val'}" in capsys.readouterr().out
    scalars, images = _scalars(tflite / "eval_val" / "eval")
    exported, exported_images = saved_model_eval
    assert set(scalars) == set(exported) and images == exported_images
    # The same network; TFLite's post-processing op keeps 10 detections, each anchor's best class only.
    assert scalars[MAP_50] == pytest.approx(exported[MAP_50], abs=0.02)
    assert load_detector(tflite / "model.tflite").step == NUM_STEPS
    assert _steps(tflite / "eval_val" / "eval") == {NUM_STEPS}

    # model.json's optional "step" is the step the model's evaluations are logged at (0 without one).
    model_json = tflite / "model.json"
    metadata = json.loads(model_json.read_text())
    for step, expected in ((None, 0), (42, 42), (-1, None), ("90", None)):
        model_json.write_text(json.dumps({key: value for key, value in metadata.items() if key != "step"}
                                         | ({} if step is None else {"step": step})))
        if expected is None:
            with pytest.raises(TfodkitError, match=rf"model\.json: field step is {step!r}; expected"):
                load_detector(tflite / "model.tflite")
        else:
            assert load_detector(tflite / "model.tflite").step == expected


def test_evaluate_model_on_the_test_split_reads_the_manifests_shards(trained: dict, tmp_path: Path, capsys):
    assert main(["evaluate", "--model", str(trained["exported"]), "--split", "test",
                 "--model_dir", str(tmp_path / "test")]) == 0
    printed = capsys.readouterr().out
    shards = [str(trained["root"] / "records" / name) for name in trained["manifest"]["splits"]["test"]["shards"]]
    assert f"on {trained['manifest']['splits']['test']['images']} image(s) of {', '.join(shards)}:" in printed
    scalars, _ = _scalars(tmp_path / "test" / "eval")
    assert set(SUMMARY_METRICS) <= set(scalars)


def test_bad_model_paths_and_arguments_are_named(trained: dict, tmp_path: Path, capsys):
    with pytest.raises(TfodkitError, match=r"--model .*missing: no such directory or \.tflite file"):
        load_detector(tmp_path / "missing")
    with pytest.raises(TfodkitError, match=r"--model .*: no SavedModel here"):
        load_detector(tmp_path)
    (tmp_path / "alone.tflite").write_bytes(b"")
    with pytest.raises(TfodkitError, match=r"model\.json: not found"):
        load_detector(tmp_path / "alone.tflite")
    assert main(["evaluate", "--checkpoint_dir", str(trained["run"]), "--split", "test",
                 "--pipeline_config_path", str(trained["run"] / "pipeline.config")]) == 1
    assert "--split and --records apply to --model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint_dir", str(trained["run"]), "--model", str(trained["exported"])])
    # A drawing never replaces an input image.
    photo = tmp_path / "photos" / "photo.png"
    photo.parent.mkdir()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(photo)
    before = photo.read_bytes()
    assert main(["detect", "--model", str(trained["exported"]), "--images", str(photo.parent),
                 "--out", str(photo.parent), "--no_progress"]) == 1
    assert f"the drawing of {photo} would replace that image" in capsys.readouterr().err
    assert photo.read_bytes() == before and sorted(photo.parent.iterdir()) == [photo]
