"""Conversion against real outside parts: LabelImg's own XML writer, imgviz's Pascal VOC photo, and the
OD API decoder's feature spec parsed by TensorFlow itself."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import imgviz
import numpy as np
import pytest
import tensorflow as tf

from labelimg_data import image_bytes
from tfodkit import label_map
from tfodkit.cli import main
from tfodkit.dataset.example_decoder import ExampleDecoder

PascalVocWriter = pytest.importorskip("libs.pascal_voc_io", reason="PyPI labelimg is not installed").PascalVocWriter

# The keys and types of the OD API's TfExampleDecoder (data_decoders/tf_example_decoder.py).
OD_API_SPEC = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/key/sha256": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/source_id": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=1),
    "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=1),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/class/text": tf.io.VarLenFeature(tf.string),
    "image/object/area": tf.io.VarLenFeature(tf.float32),
    "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    "image/object/difficult": tf.io.VarLenFeature(tf.int64),
    "image/object/group_of": tf.io.VarLenFeature(tf.int64),
    "image/object/weight": tf.io.VarLenFeature(tf.float32),
}


def _labelimg_save(folder: Path, image_name: str, shape: tuple[int, int, int], boxes: list) -> None:
    writer = PascalVocWriter(folder.name, image_name, shape, local_img_path=str(folder / image_name))
    for xmin, ymin, xmax, ymax, name, difficult in boxes:
        writer.add_bnd_box(xmin, ymin, xmax, ymax, name, difficult)
    writer.save(target_file=str((folder / image_name).with_suffix(".xml")))


def _convert(data: Path, out: Path) -> list[dict]:
    assert main(["make-tfrecords", str(data), "--out", str(out), "--workers", "1", "--split", "train=1"]) == 0
    decoder = ExampleDecoder(label_map.load(out / "label_map.pbtxt"))
    files = [str(path) for path in sorted(out.glob("train-*.tfrecord"))]
    return [{k: v.numpy() for k, v in decoder(record).items()} for record in tf.data.TFRecordDataset(files)]


def test_xml_from_labelimgs_own_writer_round_trips_to_1e6(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    boxes = {
        "street.jpg": [(12, 30, 210, 118, "car", False), (150, 2, 199, 150, "person", True)],
        "park.png": [(1, 1, 47, 33, "dog", False), (20, 10, 64, 48, "person", False)],
    }
    sizes = {"street.jpg": (150, 220), "park.png": (48, 64)}
    for name, objects in boxes.items():
        height, width = sizes[name]
        (data / name).write_bytes(image_bytes(width, height, "PNG" if name.endswith(".png") else "JPEG", seed=7))
        _labelimg_save(data, name, (height, width, 3), objects)
    records = {r["filename"].decode(): r for r in _convert(data, tmp_path / "out")}
    ids = label_map.load(tmp_path / "out" / "label_map.pbtxt").ids
    assert ids == {"car": 1, "dog": 2, "person": 3}
    for name, objects in boxes.items():
        height, width = sizes[name]
        record = records[name]
        expected = [[ymin / height, xmin / width, ymax / height, xmax / width]
                    for xmin, ymin, xmax, ymax, _, _ in objects]
        np.testing.assert_allclose(record["boxes"], expected, atol=1e-6)
        assert record["classes"].tolist() == [ids[obj[4]] for obj in objects]
        assert record["difficult"].tolist() == [obj[5] for obj in objects]
        assert record["image"].shape == (height, width, 3)
    # LabelImg marks a box touching the far image edge (ymax == height) as truncated.
    assert records["street.jpg"]["truncated"].tolist() == [False, True]


def test_imgviz_pascal_voc_photo_converts_and_reads_back(tmp_path):
    voc = imgviz.data.voc()
    photo = Path(imgviz.__file__).parent / "data" / "voc" / "rgb.jpg"
    data = tmp_path / "voc"
    data.mkdir()
    shutil.copy(photo, data / "2011_000003.jpg")
    height, width = voc["rgb"].shape[:2]
    names = [voc["class_names"][label] for label in voc["labels"]]
    objects = [(x1, y1, x2, y2, name, False) for (y1, x1, y2, x2), name in zip(voc["bboxes"], names)]
    assert len(objects) == 19
    _labelimg_save(data, "2011_000003.jpg", voc["rgb"].shape, objects)

    (record,) = _convert(data, tmp_path / "out")
    np.testing.assert_allclose(record["boxes"], voc["bboxes"] / [height, width, height, width], atol=1e-6)
    assert [text.decode() for text in record["class_text"]] == names
    # The photo's JPEG bytes are stored untouched: TensorFlow decodes exactly what it decodes from the file.
    np.testing.assert_array_equal(record["image"], tf.io.decode_jpeg(photo.read_bytes()).numpy())
    assert np.abs(record["image"].astype(int) - voc["rgb"]).mean() < 8  # the same photo as imgviz's array
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["images"][0]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert manifest["splits"]["train"]["boxes_per_class"] == {
        name: names.count(name) for name in sorted(set(names))}


def test_records_parse_with_the_od_api_feature_spec(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(image_bytes(64, 48, "JPEG", seed=8))
    _labelimg_save(data, "a.jpg", (48, 64, 3), [(4, 6, 40, 30, "kite", False)])
    (data / "b.png").write_bytes(image_bytes(32, 24, "PNG", seed=9))
    _labelimg_save(data, "b.png", (24, 32, 3), [])
    assert main(["make-tfrecords", str(data), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--split", "train=1"]) == 0
    files = [str(path) for path in (tmp_path / "out").glob("train-*.tfrecord")]
    parsed = {}
    for record in tf.data.TFRecordDataset(files):
        features = tf.io.parse_single_example(record, OD_API_SPEC)
        parsed[features["image/filename"].numpy().decode()] = features
    a, b = parsed["a.jpg"], parsed["b.png"]
    assert (a["image/format"].numpy(), b["image/format"].numpy()) == (b"jpeg", b"png")
    assert tf.io.decode_jpeg(a["image/encoded"]).shape == (48, 64, 3)
    assert tf.io.decode_png(b["image/encoded"]).shape == (24, 32, 3)
    assert (int(a["image/height"]), int(a["image/width"])) == (48, 64)
    np.testing.assert_allclose(tf.sparse.to_dense(a["image/object/bbox/xmax"]).numpy(), [40 / 64], atol=1e-6)
    assert tf.sparse.to_dense(a["image/object/class/label"]).numpy().tolist() == [1]
    assert tf.sparse.to_dense(a["image/object/class/text"]).numpy().tolist() == [b"kite"]
    assert tf.sparse.to_dense(b["image/object/bbox/ymin"]).shape == (0,)
    source_ids = {int(f["image/source_id"].numpy()) for f in parsed.values()}  # decimal integers, unique
    assert len(source_ids) == 2
    assert a["image/key/sha256"].numpy().decode() == hashlib.sha256((data / "a.jpg").read_bytes()).hexdigest()
