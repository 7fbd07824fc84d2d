"""Input pipeline on a real converted demo set: batches match the XML, flips follow the pixels, seeds repeat."""

import hashlib
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfodkit import inputs, label_map
from tfodkit.config.loader import parse_pipeline_text
from tfodkit.config.templates import template_text
from tfodkit.dataset import demo_data
from tfodkit.dataset.convert import ConvertOptions, convert
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, encode_example
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_pb2

SIZE = 64  # model input side: small keeps the tests fast
NUM_IMAGES = 12


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(demo folder, records folder) of a 12-image demo set converted by make-tfrecords' converter."""
    root = tmp_path_factory.mktemp("inputs")
    demo_data.write_dataset(root / "demo", num_images=NUM_IMAGES, seed=11)
    convert(ConvertOptions(images=root / "demo", annotations=root / "demo", out=root / "records",
                           split={"train": 0.67, "val": 0.33}, seed=0, workers=1))
    return root / "demo", root / "records"


def _config(records: Path, augmentation: str | None = None) -> pipeline_pb2.TrainEvalPipelineConfig:
    config = parse_pipeline_text(template_text("ssd_mobilenet_v2_320x320").replace(
        "PATH_TO_BE_CONFIGURED", str(records)), "template")
    config.model.ssd.image_resizer.fixed_shape_resizer.height = SIZE
    config.model.ssd.image_resizer.fixed_shape_resizer.width = SIZE
    if augmentation is not None:
        del config.train_config.data_augmentation_options[:]
        if augmentation:
            config.train_config.data_augmentation_options.add().MergeFrom(_step(augmentation))
    return config


def _step(name: str):
    step = pipeline_pb2.TrainEvalPipelineConfig().train_config.data_augmentation_options.add()
    getattr(step, name).SetInParent()
    return step


def _xml(demo: Path, filename: str) -> tuple[int, int, list[str], np.ndarray]:
    """Independent reading of a demo XML: height, width, class names, boxes as normalised ymin,xmin,ymax,xmax."""
    root = ElementTree.parse(demo / Path(filename).with_suffix(".xml").name).getroot()
    width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
    names, boxes = [], []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        x0, y0, x1, y1 = (float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        names.append(obj.findtext("name"))
        boxes.append([y0 / height, x0 / width, y1 / height, x1 / width])
    return height, width, names, np.array(boxes, np.float32).reshape(-1, 4)


def _unbatched(dataset: tf.data.Dataset) -> list[tuple[dict, dict]]:
    """Every example of a finite dataset as numpy arrays, one (features, labels) pair each."""
    out = []
    for features, labels in dataset.as_numpy_iterator():
        for i in range(features["image"].shape[0]):
            out.append(({k: v[i] for k, v in features.items()}, {k: v[i] for k, v in labels.items()}))
    return out


def test_eval_examples_match_their_xml(dataset):
    demo, records = dataset
    config = _config(records)
    examples = _unbatched(inputs.eval_dataset(config, batch_size=3))
    labels_by_name = label_map.load(records / "label_map.pbtxt").ids
    assert 2 <= len(examples) < NUM_IMAGES
    filenames = [labels["filename"].decode() for _, labels in examples]
    assert len(set(filenames)) == len(filenames)
    for features, labels in examples:
        filename = labels["filename"].decode()
        height, width, names, boxes = _xml(demo, filename)
        n = len(names)
        assert features["image"].shape == (SIZE, SIZE, 3) and features["image"].dtype == np.float32
        np.testing.assert_array_equal(features["true_image_shape"], [SIZE, SIZE, 3])
        np.testing.assert_array_equal(labels["original_image_spatial_shape"], [height, width])
        assert labels["num_boxes"] == n and labels["num_boxes_over_limit"] == 0
        assert labels["boxes"].shape == (100, 4) and labels["classes"].dtype == np.int32
        np.testing.assert_allclose(labels["boxes"][:n], boxes, atol=1e-6)
        np.testing.assert_array_equal(labels["classes"][:n], [labels_by_name[name] for name in names])
        np.testing.assert_array_equal(labels["weights"], [1.0] * n + [0.0] * (100 - n))
        assert not labels["boxes"][n:].any() and not labels["classes"][n:].any() and not labels["difficult"].any()
        # The pixels are the image's, resized: same overall brightness per channel as the JPEG itself.
        original = np.asarray(Image.open(demo / filename).convert("RGB"), np.float32)
        np.testing.assert_allclose(features["image"].mean(axis=(0, 1)), original.mean(axis=(0, 1)), atol=4.0)
        assert 0.0 <= features["image"].min() and features["image"].max() <= 255.0


def test_training_batches_are_full_static_and_augmented_in_range(dataset):
    _, records = dataset
    config = _config(records)  # the template's random_horizontal_flip + ssd_random_crop
    config.train_config.batch_size = 3
    config.train_input_reader.num_epochs = 2
    spec = inputs.input_spec(config, "train")
    ds = inputs.build_dataset(spec, seed=1)
    assert ds.element_spec[0]["image"].shape == (3, SIZE, SIZE, 3)
    assert ds.element_spec[1]["boxes"].shape == (3, 100, 4)
    assert "filename" not in ds.element_spec[1]
    num_train = sum(1 for _ in tf.data.TFRecordDataset(list(spec.record_files)))
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 2 * num_train // 3  # the last partial batch is dropped
    for features, labels in batches:
        assert features["image"].min() >= 0.0 and features["image"].max() <= 255.0
        for boxes, count in zip(labels["boxes"], labels["num_boxes"]):
            valid = boxes[:count]
            assert (valid >= 0).all() and (valid <= 1).all()
            assert (valid[:, 2] > valid[:, 0]).all() and (valid[:, 3] > valid[:, 1]).all()
            assert not boxes[count:].any()
        np.testing.assert_array_equal(labels["weights"].sum(axis=1), labels["num_boxes"])
        assert ((labels["classes"] > 0) == (labels["weights"] > 0)).all()


def test_same_seed_same_batches_other_seed_other_batches(dataset):
    _, records = dataset
    config = _config(records)
    config.train_config.batch_size = 2

    def first_batches(seed):
        return list(inputs.train_dataset(config, seed=seed).take(2).as_numpy_iterator())

    first, again, other = first_batches(5), first_batches(5), first_batches(6)
    for (f1, l1), (f2, l2) in zip(first, again):
        np.testing.assert_array_equal(f1["image"], f2["image"])
        np.testing.assert_array_equal(l1["boxes"], l2["boxes"])
    assert any(not np.array_equal(a[0]["image"], b[0]["image"]) for a, b in zip(first, other))


def _blocks(image: np.ndarray) -> np.ndarray:
    return image.reshape(SIZE // 8, 8, SIZE // 8, 8, 3).mean(axis=(1, 3))


def test_horizontal_flip_moves_boxes_with_the_pixels(dataset):
    _, records = dataset
    config = _config(records, augmentation="random_horizontal_flip")
    config.train_input_reader.shuffle = False
    config.train_input_reader.num_epochs = 1
    plain = _unbatched(inputs.build_dataset(inputs.input_spec(config, "train", training=False, batch_size=1)))
    augmented = _unbatched(inputs.build_dataset(inputs.input_spec(config, "train", batch_size=1), seed=2))
    assert len(plain) == len(augmented)
    flipped = 0
    for (f0, l0), (f1, l1) in zip(plain, augmented):
        n = l0["num_boxes"]
        # Resampling after a flip lands on other source pixels: compare 8x8-pixel block means.
        same = np.abs(_blocks(f1["image"]) - _blocks(f0["image"])).mean()
        mirrored = np.abs(_blocks(f1["image"]) - _blocks(f0["image"][:, ::-1])).mean()
        if np.array_equal(f1["image"], f0["image"]):
            np.testing.assert_array_equal(l1["boxes"], l0["boxes"])
        else:
            flipped += 1
            assert mirrored < same / 3
            expected = l0["boxes"][:n][:, [0, 3, 2, 1]] * [1, -1, 1, -1] + [0, 1, 0, 1]
            np.testing.assert_allclose(l1["boxes"][:n], expected, atol=1e-6)
        np.testing.assert_array_equal(l1["classes"], l0["classes"])
    assert 0 < flipped < len(plain)


def test_more_boxes_than_max_keeps_the_first_and_counts_the_rest(dataset):
    demo, records = dataset
    config = _config(records)
    config.eval_input_reader[0].max_number_of_boxes = 2
    examples = _unbatched(inputs.eval_dataset(config))
    assert any(labels["num_boxes_over_limit"] > 0 for _, labels in examples)
    for _, labels in examples:
        _, _, names, boxes = _xml(demo, labels["filename"].decode())
        assert labels["boxes"].shape == (2, 4)
        assert labels["num_boxes"] == min(len(names), 2)
        assert labels["num_boxes_over_limit"] == len(names) - labels["num_boxes"]
        np.testing.assert_allclose(labels["boxes"][:labels["num_boxes"]], boxes[:2], atol=1e-6)


def _label_only_config(
    demo: Path, records: Path, out: Path, label: int
) -> tuple[pipeline_pb2.TrainEvalPipelineConfig, int]:
    """An eval config reading one demo image whose objects carry class/label `label` and no class/text."""
    filename = "digits_0000.jpg"
    height, width, names, boxes = _xml(demo, filename)
    data = (demo / filename).read_bytes()
    image = EncodedImage(data, "jpeg", height, width, filename, "1", hashlib.sha256(data).hexdigest())
    objects = [ObjectBox("", label, b[1], b[0], b[3], b[2]) for b in boxes]
    example = tf.train.Example.FromString(encode_example(image, objects))
    del example.features.feature["image/object/class/text"]
    with tf.io.TFRecordWriter(str(out / f"label{label}.tfrecord")) as writer:
        writer.write(example.SerializeToString())
    config = _config(records)
    config.eval_input_reader[0].tf_record_input_reader.input_path[:] = [str(out / f"label{label}.tfrecord")]
    return config, len(names)


def test_class_label_is_used_where_text_is_absent_and_checked(dataset, tmp_path):
    demo, records = dataset
    config, count = _label_only_config(demo, records, tmp_path, 7)
    [(_, labels)] = _unbatched(inputs.eval_dataset(config))
    np.testing.assert_array_equal(labels["classes"][:count], [7] * count)

    config, count = _label_only_config(demo, records, tmp_path, 11)
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        list(inputs.eval_dataset(config).as_numpy_iterator())
    assert str(inputs.user_error(raised.value)) == (
        f"eval_input_reader[0]: image digits_0000.jpg (source_id 1): class id(s) [{', '.join(['11'] * count)}] "
        "outside 1..10 (model.ssd.num_classes)")


def test_object_of_unknown_class_stops_the_pipeline_naming_the_image(dataset, tmp_path):
    demo, records = dataset
    config = _config(records)
    config.eval_input_reader[0].tf_record_input_reader.input_path[:] = [str(records / "*.tfrecord")]
    present = {name for xml in demo.glob("*.xml") for name in _xml(demo, xml.name)[2]}
    missing = sorted(present)[0]
    ids = {name: i for name, i in label_map.load(records / "label_map.pbtxt").ids.items() if name != missing}
    label_map.LabelMap(ids, {}).write(tmp_path / "partial.pbtxt")
    config.eval_input_reader[0].label_map_path = str(tmp_path / "partial.pbtxt")
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        list(inputs.eval_dataset(config).as_numpy_iterator())
    error = inputs.user_error(raised.value)
    assert re.fullmatch(rf"eval_input_reader\[0\]: image (digits_\d+\.jpg) \(source_id \d+\): class name\(s\) "
                        rf"\[{missing}(, {missing})*\] not in the label map {tmp_path / 'partial.pbtxt'}", str(error))
    assert missing in _xml(demo, re.search(r"digits_\d+\.jpg", str(error)).group())[2]


def test_config_problems_are_errors_naming_the_field(dataset):
    _, records = dataset
    config = _config(records)
    config.eval_input_reader[0].tf_record_input_reader.input_path[:] = [str(records / "nothing-*.tfrecord")]
    field = r"eval_input_reader\[0\]\.tf_record_input_reader\.input_path\[0\]"
    with pytest.raises(TfodkitError, match=field + ": no files"):
        inputs.input_spec(config, "eval")

    config = _config(records)
    config.train_input_reader.max_number_of_boxes = 50
    config.train_config.max_number_of_boxes = 60
    with pytest.raises(TfodkitError, match="train_input_reader.max_number_of_boxes .50. and train_config"):
        inputs.input_spec(config, "train")
    config.ClearField("train_input_reader")
    config.train_input_reader.MergeFrom(_config(records).train_input_reader)
    assert inputs.input_spec(config, "train").max_boxes == 60  # train_config's, the only one written

    config = _config(records)
    config.model.ssd.num_classes = 5
    with pytest.raises(TfodkitError, match=r"train_input_reader\.label_map_path: .*ids up to 10 .*num_classes is 5"):
        inputs.input_spec(config, "train")

    config = _config(records, augmentation="random_black_patches")
    with pytest.raises(TfodkitError, match=r"data_augmentation_options\[0\]: random_black_patches is not supported"):
        inputs.input_spec(config, "train")
    assert inputs.input_spec(config, "train", training=False).augmentation is None
