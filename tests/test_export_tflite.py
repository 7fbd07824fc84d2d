"""`tfodkit export-tflite`: LiteRT runs the float and int8 files as the model computes, by tensor index and by
signature; the embedded metadata lets MediaPipe's ObjectDetector find the model's objects with no code.

Two models. The tiny demo-set SSD with its weights set, not trained, so that it is confident (a second instead
of minutes of training): its batch norms take the statistics of the training images (a random MobileNet's
activations otherwise fade to constants) and its class heads are scaled so that its logits spread around -3
with a standard deviation of 1; its detections differ from anchor to anchor and from image to image, with
scores from 0.3 to 0.98, so what an export could get wrong (anchors, box coder scales, the background column,
class offsets, NMS attributes, output order) shows in exact comparisons. Such a random network is chaotic (half
a pixel of noise moves its scores by 0.01-0.02), so int8 cannot be compared on it: the int8 and MediaPipe tests
use a real trained detector, the OD API's SSDLite pedestrian model that tests/tf1_oracle.py loads, on real
photos.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from flatbuffers import flexbuffers
from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
from test_export_saved_model import _cli
from test_trainer import TINY
from tf1_oracle import frozen_graph_path, real_photos

from tfodkit import label_map
from tfodkit.checkpoints import tf1_graph
from tfodkit.config.loader import load_pipeline
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.export.runtime import load_detector
from tfodkit.export.tflite import POSTPROCESS_OP, export_tflite
from tfodkit.export.trained_model import load_trained_model
from tfodkit.model.builder import build_ssd
from tfodkit.training.checkpoints import TrainingCheckpoints
from tfodkit.training.optimizers import build_optimizer

PEDESTRIAN_CONFIG = Path(__file__).parent / "data" / "ssdlite_pedestrian.config"
OUTPUT_NAMES = ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
MAX_DETECTIONS = 10
MIN_SCORE = 0.5
SCORE_MARGIN = 0.05  # detections this close to MIN_SCORE may fall on either side of it in another runtime
UPSCALE = 2  # MediaPipe gets the model-size photos enlarged 2x (nearest), which its resize undoes exactly


def _layers(layer: keras.layers.Layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _layers(sub)


@pytest.fixture(scope="module")
def trained(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The confident tiny model (see the module docstring) saved as a training checkpoint, the config with TINY
    applied, and the uint8 val images at the model's input size."""
    root = tmp_path_factory.mktemp("tflite")
    keras.utils.set_random_seed(0)
    config = load_pipeline(pipeline, TINY)
    model = build_ssd(config)
    decoder = ExampleDecoder()

    def images(split: str) -> np.ndarray:
        records = tf.data.TFRecordDataset(sorted(str(p) for p in (pipeline.parent / "records").glob(f"{split}-*")))
        resized = [model.resizer(decoder(record)["image"][tf.newaxis]).numpy() for record in records]
        return np.clip(np.round(np.concatenate(resized)), 0, 255).astype(np.uint8)

    train, val = images("train"), images("val")
    norms = [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # one training-mode call sets the moving statistics to the batch's
    model(train, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    logits = model(np.concatenate([train, val]))["class_predictions_with_background"].numpy()
    scale = 1.0 / logits.std()
    for head in [layer for layer in _layers(model) if layer.name.endswith("_ClassPredictor")]:
        head.kernel.assign(head.kernel * scale)
        head.bias.assign(scale * (head.bias - logits.mean()) - 3.0)
    optimizer = build_optimizer(config.train_config.optimizer)
    optimizer.build(model.trainable_variables)
    TrainingCheckpoints(root / "run", model, optimizer, tf.distribute.get_strategy()).save()
    return {"root": root, "config": config, "model": model, "val": val}


def _export_args(trained: dict, pipeline: Path, out: Path, *flags: str) -> list[str]:
    """`tfodkit export-tflite` of the tiny model; `flags` come after TINY's --set overrides."""
    tiny = [arg for override in TINY for arg in ("--set", override)]
    return ["export-tflite", "--pipeline_config_path", str(pipeline), "--trained_checkpoint_dir",
            str(trained["root"] / "run"), "--output_directory", str(out), *tiny, *flags]


@pytest.fixture(scope="module")
def float_export(trained: dict, pipeline: Path) -> tuple[Path, str]:
    out = trained["root"] / "float"
    code, stdout, stderr = _cli(*_export_args(trained, pipeline, out))
    assert code == 0, stderr
    return out, stdout


@pytest.fixture(scope="module")
def pedestrian(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The OD API's trained SSDLite pedestrian detector as an exported tfodkit checkpoint, three real photos
    (people in two) in a TFRecord, and its float and int8 (calibrated on the photos) exports."""
    root = tmp_path_factory.mktemp("pedestrian")
    photos = real_photos()
    with tf.io.TFRecordWriter(str(root / "photos.tfrecord")) as writer:
        for photo in photos:
            encoded = tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(photo).numpy()]))
            writer.write(tf.train.Example(features=tf.train.Features(feature={"image/encoded": encoded}))
                         .SerializeToString())
    (root / "label_map.pbtxt").write_text('item { name: "pedestrian" id: 1 }\n')
    config_path = root / "pipeline.config"
    reader = (f'eval_input_reader {{ label_map_path: "{root}/label_map.pbtxt" '
              f'tf_record_input_reader {{ input_path: "{root}/photos.tfrecord" }} }}\n')
    config_path.write_text(PEDESTRIAN_CONFIG.read_text() + reader)
    model = build_ssd(load_pipeline(config_path))
    tf1_graph.import_tf1_detector(model, frozen_graph_path())
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(root / "checkpoint"), 1).save(0)
    exports = {}
    for kind, flags in (("float", ()), ("int8", ("--quantize", "int8", "--representative", str(root / "*.tfrecord")))):
        code, stdout, stderr = _cli("export-tflite", "--pipeline_config_path", str(config_path),
                                    "--trained_checkpoint_dir", str(root / "checkpoint"), "--output_directory",
                                    str(root / kind), *flags)
        assert code == 0, stderr
        exports[kind] = (root / kind / ("model.tflite" if kind == "float" else "model_int8.tflite"), stdout)
    detections = model.detect(photos)
    # With one class, the OD API's multiclass NMS is the op's NMS; TFLite leaves boxes unclipped.
    expected = [_valid(*(detections[name][i].numpy() for name in ("detection_boxes", "detection_classes",
                                                                    "detection_scores", "num_detections")))
                for i in range(len(photos))]
    expected = [(boxes, classes - 1, scores) for boxes, classes, scores in expected]
    return {"photos": photos, "exports": exports, "expected": expected}


def _interpreter(path: Path) -> Interpreter:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _run_by_index(interpreter: Interpreter, image: np.ndarray) -> list[np.ndarray]:
    """The outputs in get_output_details() order."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(output["index"]) for output in interpreter.get_output_details()]


def _valid(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, ...]:
    """One image's valid rows: boxes [K, 4], classes [K] (int), scores [K]."""
    k = int(np.asarray(count).reshape(()))
    return boxes.reshape(-1, 4)[:k], np.rint(classes.reshape(-1)[:k]).astype(int), scores.reshape(-1)[:k]


def _fast_nms(model, images: np.ndarray, iou_threshold: float, score_threshold: float) -> list[tuple[np.ndarray, ...]]:
    """What TFLite_Detection_PostProcess computes without regular NMS, from the model's own predictions
    (SSD.call): boxes decoded by the model's box coder, each anchor's best class (background left out), one
    NMS over all anchors, the MAX_DETECTIONS best."""
    predictions = model(images)
    boxes = model.box_coder.decode(predictions["box_encodings"], model.anchors[tf.newaxis]).numpy()
    scores = tf.sigmoid(predictions["class_predictions_with_background"]).numpy()[..., 1:]
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        best, classes = image_scores.max(-1), image_scores.argmax(-1)
        keep = tf.image.non_max_suppression(image_boxes, best, MAX_DETECTIONS, iou_threshold, score_threshold).numpy()
        results.append((image_boxes[keep], classes[keep], best[keep]))
    return results


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    height = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    width = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - height * width
    return float(height * width / union)


def _assert_same_objects(found: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...], what: str,
                         min_iou: float = 0.9) -> int:
    """Every detection of either side scoring at least MIN_SCORE (+ SCORE_MARGIN) is on the other side with the
    same class, IoU >= min_iou and a score above MIN_SCORE (- SCORE_MARGIN); returns how many matched. Boxes
    are compared clipped to the image, as the model's postprocess clips them (TFLite's op does not)."""
    found, expected = ((np.clip(side[0], 0.0, 1.0), *side[1:]) for side in (found, expected))
    matched = 0
    for (boxes, classes, scores), (other_boxes, other_classes, other_scores), side in (
            (found, expected, "found"), (expected, found, "expected")):
        for box, cls, score in zip(boxes, classes, scores):
            if score < MIN_SCORE + SCORE_MARGIN:
                continue
            partners = [_iou(box, other) for other, other_cls, other_score in
                        zip(other_boxes, other_classes, other_scores)
                        if other_cls == cls and other_score >= MIN_SCORE - SCORE_MARGIN]
            assert partners and max(partners) >= min_iou, f"{what}: {side} class {cls} {score:.3f} {box} unmatched"
            matched += 1
    return matched


def test_float_model_outputs_by_index_and_signature_equal_the_models_detections(trained: dict, float_export):
    out, printed = float_export
    assert sorted(path.name for path in out.iterdir()) == ["labels.txt", "model.json", "model.tflite",
                                                          "pipeline.config"]
    description = json.loads((out / "model.json").read_text())
    assert description["input"] == {"name": "input_tensor", "shape": [1, 96, 96, 3], "dtype": "float32",
                                    "normalization": {"mean": [127.5] * 3, "std": [127.5] * 3}, "resize": "bilinear"}
    assert description["outputs"] == [
        {"index": 0, "name": "detection_boxes", "role": "location"},
        {"index": 1, "name": "detection_classes", "role": "category"},
        {"index": 2, "name": "detection_scores", "role": "score"},
        {"index": 3, "name": "num_detections", "role": "number of detections"}]
    assert (description["num_classes"], description["max_detections"], description["quantization"]) == (
        10, MAX_DETECTIONS, "none")
    assert description["checkpoint"] == str(trained["root"] / "run" / "ckpt-0")
    assert load_pipeline(out / description["pipeline_config"]) == trained["config"]
    names = label_map.load(trained["config"].eval_input_reader[0].label_map_path).names_by_id()
    assert (out / "labels.txt").read_text().splitlines() == [names[i] for i in range(1, 11)]
    assert "0: detection_boxes (location)" in printed and "3: num_detections (number of detections)" in printed
    assert "get_signature_runner(\"serving_default\")" in printed

    interpreter = _interpreter(out / "model.tflite")
    details = interpreter.get_output_details()
    # The op's output ports in order: tensor indices ascending, as the metadata writers pair them with roles.
    assert [d["index"] for d in details] == sorted(d["index"] for d in details)
    assert [tuple(d["shape"]) for d in details] == [(1, MAX_DETECTIONS, 4), (1, MAX_DETECTIONS), (1, MAX_DETECTIONS),
                                                     (1,)]
    assert all(d["dtype"] == np.float32 for d in details)
    runner = _interpreter(out / "model.tflite").get_signature_runner("serving_default")
    model, config = trained["model"], trained["config"]
    nms = config.model.ssd.post_processing.batch_non_max_suppression
    preprocessed = model(trained["val"])["preprocessed_inputs"].numpy()
    expected = _fast_nms(model, trained["val"], nms.iou_threshold, nms.score_threshold)
    confident = 0
    for image, reference in zip(preprocessed, expected):
        by_index = _run_by_index(interpreter, image[np.newaxis])
        by_name = runner(input_tensor=image[np.newaxis])
        for name, output in zip(OUTPUT_NAMES, by_index):
            np.testing.assert_array_equal(by_name[name], output, err_msg=name)
        boxes, classes, scores = _valid(*by_index)
        assert len(scores) == MAX_DETECTIONS
        np.testing.assert_array_equal(classes, reference[1])
        np.testing.assert_allclose(scores, reference[2], atol=1e-4)
        np.testing.assert_allclose(boxes, reference[0], atol=1e-4)
        confident += int((scores >= MIN_SCORE).sum())
    assert confident >= 2 * len(expected)  # the comparison is not about near-uniform scores


def test_regular_nms_keeps_detections_per_class_and_equals_the_models_postprocess(
        trained: dict, pipeline: Path):
    """--use_regular_nms: per-class NMS, as the model's own postprocess (SSD.detect, what evaluation and the
    SavedModel run) computes it, with the config's max_detections_per_class (which the converter drops from the
    op and the export puts back); TFLite leaves the boxes unclipped."""
    per_class = 2
    config = load_pipeline(pipeline, TINY + (
        f"model.ssd.post_processing.batch_non_max_suppression.max_detections_per_class={per_class}",))
    loaded = load_trained_model(config, trained["root"] / "run")
    out = trained["root"] / "regular"
    export = export_tflite(config, loaded, out, use_regular_nms=True)
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(export.model.read_bytes(), 0))
    (op,) = [op for op in tflite.subgraphs[0].operators
             if tflite.operatorCodes[op.opcodeIndex].customCode == POSTPROCESS_OP.encode()]
    attributes = flexbuffers.Loads(bytes(op.customOptions))
    assert attributes["detections_per_class"] == per_class and attributes["use_regular_nms"]
    assert attributes["num_classes"] == 10 and attributes["max_classes_per_detection"] == 1

    interpreter = _interpreter(export.model)
    model = loaded.model
    predictions = model(trained["val"])
    detections = model.postprocess(predictions)
    for index, image in enumerate(predictions["preprocessed_inputs"].numpy()):
        boxes, classes, scores = _valid(*_run_by_index(interpreter, image[np.newaxis]))
        assert np.bincount(classes).max() <= per_class
        np.testing.assert_array_equal(classes + 1, detections["detection_classes"][index, :MAX_DETECTIONS])
        np.testing.assert_allclose(scores, detections["detection_scores"][index, :MAX_DETECTIONS], atol=1e-4)
        np.testing.assert_allclose(np.clip(boxes, 0.0, 1.0), detections["detection_boxes"][index, :MAX_DETECTIONS],
                                   atol=1e-4)


def test_int8_model_takes_uint8_pixels_and_finds_the_models_objects(pedestrian: dict):
    path, printed = pedestrian["exports"]["int8"]
    assert sorted(item.name for item in path.parent.iterdir()) == ["labels.txt", "model.json", "model_int8.tflite",
                                                                   "pipeline.config"]
    interpreter = _interpreter(path)
    (model_input,) = interpreter.get_input_details()
    scale, zero_point = model_input["quantization"]
    # uint8 pixels p stand for the model's input (p - 127.5) / 127.5, to within half a pixel (integer zero point).
    assert model_input["dtype"] == np.uint8 and scale == pytest.approx(1 / 127.5, rel=1e-6)
    assert zero_point in (127, 128)
    description = json.loads((path.parent / "model.json").read_text())
    assert description["input"]["dtype"] == "uint8" and description["quantization"] == "int8"
    assert description["input"]["normalization"] == {"mean": [float(zero_point)] * 3,
                                                     "std": [pytest.approx(1 / scale)] * 3}
    assert f"pixels p as (p - {zero_point}) / 127.5" in printed
    # Weights and activations are integers: every convolution takes int8 tensors.
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = tflite.subgraphs[0]
    convolutions = [op for op in graph.operators if tflite.operatorCodes[op.opcodeIndex].builtinCode in (
        schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)]
    assert convolutions and all(graph.tensors[i].type == schema.TensorType.INT8
                                for op in convolutions for i in op.inputs[:2])
    details = interpreter.get_output_details()
    assert [d["dtype"] for d in details] == [np.float32] * 4
    assert [tuple(d["shape"]) for d in details] == [(1, MAX_DETECTIONS, 4), (1, MAX_DETECTIONS), (1, MAX_DETECTIONS),
                                                     (1,)]
    # Quantised box encodings move a box by a few pixels: IoU with the model's boxes 0.91 at worst on this
    # machine; the calibration is float arithmetic that may round differently elsewhere.
    matched = sum(_assert_same_objects(_valid(*_run_by_index(interpreter, photo[np.newaxis])), expected, "int8",
                                       min_iou=0.85)
                  for photo, expected in zip(pedestrian["photos"], pedestrian["expected"]))
    assert matched >= 2 * 6  # both sides of the six people the model finds with scores >= 0.55


def test_metadata_names_the_outputs_labels_and_normalisation(pedestrian: dict):
    for kind, (path, _) in pedestrian["exports"].items():
        data = path.read_bytes()
        tflite = schema.Model.GetRootAsModel(data, 0)
        entries = {tflite.Metadata(i).Name().decode(): tflite.Metadata(i).Buffer()
                   for i in range(tflite.MetadataLength())}
        buffer = tflite.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
        assert meta.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
        metadata = meta.ModelMetadataT.InitFromObj(meta.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
        assert metadata.minParserVersion == b"1.2.0"
        description = json.loads((path.parent / "model.json").read_text())
        checkpoint = Path(description["checkpoint"])
        # The checkpoint by name only: a deployed model carries no path of the machine that exported it.
        assert metadata.description.decode().startswith(f"SSD exported by tfodkit from {checkpoint.name} (step ")
        assert str(checkpoint.parent) not in metadata.description.decode()
        (subgraph,) = metadata.subgraphMetadata
        (image,) = subgraph.inputTensorMetadata
        assert image.content.contentProperties.colorSpace == meta.ColorSpaceType.RGB
        normalization = image.processUnits[0].options
        assert list(normalization.mean) == description["input"]["normalization"]["mean"][:1]
        assert list(normalization.std) == pytest.approx(description["input"]["normalization"]["std"][:1])
        if kind == "float":
            assert (list(normalization.mean), list(normalization.std)) == ([127.5], [127.5])
            assert (list(image.stats.min), list(image.stats.max)) == ([-1.0], [1.0])
        else:
            assert (list(image.stats.min), list(image.stats.max)) == ([0.0], [255.0])
        assert [tensor.name.decode() for tensor in subgraph.outputTensorMetadata] == [
            "location", "category", "score", "number of detections"]
        boxes = subgraph.outputTensorMetadata[0].content.contentProperties
        assert list(boxes.index) == [1, 0, 3, 2] and boxes.coordinateType == meta.CoordinateType.RATIO
        (labels,) = subgraph.outputTensorMetadata[1].associatedFiles
        assert labels.name == b"labels.txt" and labels.type == meta.AssociatedFileType.TENSOR_VALUE_LABELS
        assert [name.decode() for name in subgraph.outputTensorGroups[0].tensorNames] == [
            "location", "category", "score"]
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            assert packed.read("labels.txt").decode() == (path.parent / "labels.txt").read_text() == "pedestrian\n"


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_mediapipe_object_detector_finds_the_models_objects(pedestrian: dict, kind: str):
    """MediaPipe reads everything from the metadata: the input normalisation (float) or the pixel input (int8),
    the output roles and the class names. It gives LiteRT's detections of the same file (boxes as whole pixels);
    for the float file those are the model's."""
    from mediapipe import Image, ImageFormat
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import ObjectDetector, ObjectDetectorOptions

    path, _ = pedestrian["exports"][kind]
    interpreter = _interpreter(path)
    options = ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=MAX_DETECTIONS,
                                    score_threshold=0.0)
    matched = 0
    with ObjectDetector.create_from_options(options) as detector:
        for photo, expected in zip(pedestrian["photos"], pedestrian["expected"]):
            large = np.ascontiguousarray(np.repeat(np.repeat(photo, UPSCALE, axis=0), UPSCALE, axis=1))
            result = detector.detect(Image(image_format=ImageFormat.SRGB, data=large))
            height, width = large.shape[:2]
            boxes = np.array([[d.bounding_box.origin_y / height, d.bounding_box.origin_x / width,
                               (d.bounding_box.origin_y + d.bounding_box.height) / height,
                               (d.bounding_box.origin_x + d.bounding_box.width) / width]
                              for d in result.detections]).reshape(-1, 4)
            assert {d.categories[0].category_name for d in result.detections} <= {"pedestrian"}
            scores = np.array([d.categories[0].score for d in result.detections])
            found = (boxes, np.zeros(len(boxes), dtype=int), scores)
            image = photo[np.newaxis] if kind == "int8" else ((photo[np.newaxis] - 127.5) / 127.5).astype(np.float32)
            litert = _valid(*_run_by_index(interpreter, image))
            np.testing.assert_allclose(found[2], litert[2][:len(found[2])], atol=1e-4)
            matched += _assert_same_objects(found, litert, f"MediaPipe {kind} vs LiteRT")
            if kind == "float":
                _assert_same_objects(found, expected, "MediaPipe float vs the model")
    assert matched >= 2 * 6


def test_the_runtime_reads_model_json_and_detects_as_the_model(trained: dict, float_export):
    """The model.json contract as `tfodkit detect` reads it: label map ids, same objects."""
    detector = load_detector(float_export[0] / "model.tflite")
    model, config = trained["model"], trained["config"]
    nms = config.model.ssd.post_processing.batch_non_max_suppression
    for found, reference in zip(detector.detect(list(trained["val"])),
                                _fast_nms(model, trained["val"], nms.iou_threshold, nms.score_threshold)):
        np.testing.assert_array_equal(found["classes"], reference[1] + 1)
        np.testing.assert_allclose(found["scores"], reference[2], atol=1e-4)


# --- bad input -----------------------------------------------------------------------------------------------


def test_a_config_tflite_cannot_honour_is_refused_naming_the_field(
        trained: dict, pipeline: Path, tmp_path: Path):
    for override, field in (
            ("model.ssd.image_resizer.keep_aspect_ratio_resizer.min_dimension=96",
             "model.ssd.image_resizer.keep_aspect_ratio_resizer"),
            ("model.ssd.post_processing.batch_non_max_suppression.soft_nms_sigma=0.5",
             "model.ssd.post_processing.batch_non_max_suppression.soft_nms_sigma")):
        code, _, stderr = _cli(*_export_args(trained, pipeline, tmp_path / "out", "--set", override))
        assert code == 1 and field in stderr, stderr
        assert not (tmp_path / "out").exists()
    code, _, stderr = _cli(*_export_args(trained, pipeline, tmp_path / "out", "--max_detections", "0"))
    assert code == 1 and "--max_detections: must be at least 1" in stderr


def test_a_representative_set_without_images_is_refused(trained: dict, pipeline: Path, tmp_path: Path):
    empty = tmp_path / "empty-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    for pattern, message in ((str(tmp_path / "nothing-*.tfrecord"), "no files match"),
                             (str(tmp_path / "empty-*.tfrecord"), "the 1 matching file(s) hold no images")):
        code, _, stderr = _cli(*_export_args(trained, pipeline, tmp_path / "out", "--quantize", "int8",
                                             "--representative", pattern))
        assert code == 1 and f"--representative {pattern!r}: {message}" in stderr, stderr
        assert not (tmp_path / "out").exists()
    code, _, stderr = _cli(*_export_args(trained, pipeline, tmp_path / "out", "--quantize", "int8"))
    assert code == 1 and "--quantize int8: needs --representative GLOB" in stderr


def test_an_existing_output_directory_is_left_alone_without_overwrite(trained: dict, pipeline: Path,
                                                                    float_export, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"precious")
    code, _, stderr = _cli(*_export_args(trained, pipeline, out))
    assert code == 1 and f"--output_directory {out}: exists and is not an empty directory" in stderr
    assert "--overwrite" in stderr
    assert [path.name for path in out.iterdir()] == ["model.tflite"]
    assert (out / "model.tflite").read_bytes() == b"precious"
    # A float export's directory does not take the int8 model: its model.json describes the float one.
    code, _, stderr = _cli(*_export_args(trained, pipeline, float_export[0], "--overwrite", "--quantize", "int8",
                                         "--representative", "unused"))
    assert code == 1 and "holds model.tflite, which its model.json describes" in stderr
    assert json.loads((float_export[0] / "model.json").read_text())["quantization"] == "none"

