"""`tfodkit make-tfrecords` end to end: outputs, label map, split, sharding, determinism, re-encoding, atomicity."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from labelimg_data import add_image, class_dataset, image_bytes, xml_text
from tfodkit import label_map
from tfodkit.cli import main
from tfodkit.dataset import split as splitting
from tfodkit.dataset.crc32c import crc32c
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.dataset.records import build_record
from tfodkit.dataset.shards import frame_record
from tfodkit.errors import TfodkitError


def convert(*args: object) -> int:
    return main(["make-tfrecords", *map(str, args)])


def read_split(out: Path, split: str) -> list[dict]:
    decoder = ExampleDecoder(label_map.load(out / "label_map.pbtxt"))
    files = sorted(str(path) for path in out.glob(f"{split}-*.tfrecord"))
    return [{key: value.numpy() for key, value in decoder(record).items()}
            for record in tf.data.TFRecordDataset(files)]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_crc32c_and_framing_match_tensorflows_own_writer(tmp_path):
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    payloads = [os.urandom(n) for n in (0, 1, 63, 64, 1023, 1024, 1025, 1027, 1028, 2051, 33 * 1024 + 5, 70001)]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
        for payload in payloads:
            writer.write(payload)
    assert b"".join(map(frame_record, payloads)) == (tmp_path / "tf.tfrecord").read_bytes()


def test_converts_a_labelimg_folder_into_shards_label_map_and_manifest(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    class_dataset(data, {"dog": 12, "cat": 8, "bird": 3}, negatives=4)
    add_image(data, "unlabelled.jpg", None, seed=99)
    assert convert(data, "--out", out, "--workers", 1, "--shards", 2) == 0

    assert label_map.load(out / "label_map.pbtxt").ids == {"bird": 1, "cat": 2, "dog": 3}
    info = manifest(out)
    assert sorted(path.name for path in out.glob("*.tfrecord")) == sorted(
        f"{split}-0000{i}-of-00002.tfrecord" for split in ("train", "val", "test") for i in range(2))
    assert sum(s["images"] for s in info["splits"].values()) == 27  # 23 labelled + 4 negatives
    assert info["splits"]["train"]["images"] == 21 and info["splits"]["val"]["images"] == 3
    # Stratified: every class reaches every split (bird has exactly one image per split).
    for split in ("train", "val", "test"):
        assert set(info["splits"][split]["boxes_per_class"]) == {"bird", "cat", "dog"}
    assert [entry["file"] for entry in info["skipped"]] == ["unlabelled.jpg"]
    assert "unlabelled" in info["skipped"][0]["reason"]
    for entry in info["images"]:
        assert entry["sha256"] == hashlib.sha256((data / entry["file"]).read_bytes()).hexdigest()

    records = [r for split in ("train", "val", "test") for r in read_split(out, split)]
    assert len(records) == 27
    assert sorted(int(r["source_id"]) for r in records) == list(range(1, 28))
    for record in records:
        source = (data / record["filename"].decode()).read_bytes()
        assert record["sha256"].decode() == hashlib.sha256(source).hexdigest()
        xml = (data / record["filename"].decode()).with_suffix(".xml").read_text()
        if "<object>" not in xml:
            assert record["boxes"].shape == (0, 4)
            continue
        name = record["filename"].decode().split("_")[0]
        index = int(record["filename"].decode().split("_")[1][:3])
        expected = [2.5 / 30, (3 + index % 5) / 40, 25 / 30, (30 - index % 7) / 40]
        np.testing.assert_allclose(record["boxes"], [expected], atol=1e-6)
        assert record["class_text"].tolist() == [name.encode()]
        assert record["classes"].tolist() == [{"bird": 1, "cat": 2, "dog": 3}[name]]
        assert record["image"].shape == (30, 40, 3)


def test_output_is_identical_whatever_the_worker_count(tmp_path):
    data = tmp_path / "data"
    class_dataset(data, {"a": 10, "b": 6}, negatives=2)
    assert convert(data, "--out", tmp_path / "one", "--workers", 1, "--shards", 3) == 0
    assert convert(data, "--out", tmp_path / "two", "--workers", 2, "--shards", 3) == 0
    one = {path.name: path.read_bytes() for path in (tmp_path / "one").glob("*.tfrecord")}
    two = {path.name: path.read_bytes() for path in (tmp_path / "two").glob("*.tfrecord")}
    assert one == two and len(one) == 7  # 3 train shards; val and test hold 2 images, so 2 shards each
    strip = lambda m: {k: v for k, v in m.items() if k != "options"}  # noqa: E731
    assert strip(manifest(tmp_path / "one")) == strip(manifest(tmp_path / "two"))


def test_separate_folders_subfolders_given_label_map_and_unknown_classes(tmp_path, capsys):
    images, annotations, out = tmp_path / "img", tmp_path / "ann", tmp_path / "out"
    for seed, (sub, name) in enumerate((("day", "car"), ("night", "person"), ("night", "tree"))):
        add_image(images / sub, f"{name}.jpg", None, seed=seed)
        (annotations / sub).mkdir(parents=True, exist_ok=True)
        (annotations / sub / f"{name}.xml").write_text(xml_text(f"{name}.jpg", 40, 30, [(name, 1, 1, 20, 20)]))
    given = tmp_path / "given.pbtxt"
    given.write_text('item { name: "person" id: 3 }\nitem { name: "car" id: 7 }\n')
    base = ["--images", images, "--annotations", annotations, "--label-map", given, "--workers", 1,
            "--split", "train=1"]
    assert convert(*base, "--out", out) == 1
    error = capsys.readouterr().err
    assert f"{annotations / 'night' / 'tree.xml'}:9: object 'tree': class not in the label map" in error
    assert not out.exists() or not any(out.iterdir())

    assert convert(*base, "--out", out, "--skip-unknown") == 0
    info = manifest(out)
    assert info["label_map"]["classes"] == {"person": 3, "car": 7}
    assert [(s["file"], s["line"]) for s in info["skipped"]] == [("night/tree.xml", 9)]
    records = read_split(out, "train")
    by_file = {r["filename"].decode(): r for r in records}
    assert by_file["day/car.jpg"]["classes"].tolist() == [7]
    assert by_file["night/person.jpg"]["classes"].tolist() == [3]
    assert by_file["night/tree.jpg"]["boxes"].shape == (0, 4)  # the intended subset: kept as a negative


def test_identical_content_never_lands_in_two_splits(tmp_path):
    data = tmp_path / "data"
    class_dataset(data, {"a": 20})
    same = image_bytes(40, 30, seed=1234)
    for index in range(6):
        add_image(data, f"copy_{index}.jpg", [("a", 1, 1, 9, 9)], data=same)
    assert convert(data, "--out", tmp_path / "out", "--workers", 1, "--seed", 3) == 0
    info = manifest(tmp_path / "out")
    splits = {entry["split"] for entry in info["images"] if entry["file"].startswith("copy_")}
    assert len(splits) == 1
    assert any("identical content" in w["message"] for w in info["warnings"])


def test_stratified_split_is_deterministic_and_reaches_every_split_that_can_hold_a_class():
    items = [splitting.SplitItem(f"{i:03d}", f"h{i}", frozenset({"common"} | ({"rare"} if i % 40 == 0 else set())))
             for i in range(100)]
    first = splitting.stratified_split(items, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=5)
    assert first == splitting.stratified_split(items, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=5)
    assert first != splitting.stratified_split(items, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=6)
    assert {k: len(v) for k, v in first.items()} == {"train": 80, "val": 10, "test": 10}
    rare = {"000", "040", "080"}
    assert all(rare & set(keys) for keys in first.values())  # 3 rare images: one per split


@pytest.mark.parametrize("text, message", [
    ("train=0.8,val=0.3", "sum to 1.1"), ("train=x", "not a number"), ("train", "not NAME=FRACTION"),
    ("train=0.5,train=0.5", "given twice"), ("train=1.5", "must be in"),
])
def test_bad_split_option_is_a_clear_error(text, message):
    with pytest.raises(TfodkitError, match=message):
        splitting.parse_fractions(text)


def test_split_files_take_an_existing_split(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    class_dataset(data, {"a": 3, "b": 2})
    (tmp_path / "train.txt").write_text("a_000.jpg\na_001\n# comment\nb_000\n")
    (tmp_path / "val.txt").write_text("a_002\nb_001.jpg\n")
    assert convert(data, "--out", out, "--workers", 1,
                   "--split-files", f"train={tmp_path / 'train.txt'},val={tmp_path / 'val.txt'}") == 0
    info = manifest(out)
    assert {e["file"]: e["split"] for e in info["images"]} == {
        "a_000.jpg": "train", "a_001.jpg": "train", "b_000.jpg": "train", "a_002.jpg": "val", "b_001.jpg": "val"}
    (tmp_path / "val.txt").write_text("a_002\nb_001.jpg\nmissing\n")
    assert convert(data, "--out", tmp_path / "out2", "--workers", 1,
                   "--split-files", f"train={tmp_path / 'train.txt'},val={tmp_path / 'val.txt'}") == 1
    assert "val.txt:3: 'missing' matches no converted image" in capsys.readouterr().err


def test_negatives_can_be_dropped_and_unlabelled_images_used_as_negatives(tmp_path):
    data = tmp_path / "data"
    class_dataset(data, {"a": 4}, negatives=2)
    add_image(data, "unlabelled.jpg", None)
    assert convert(data, "--out", tmp_path / "o1", "--workers", 1, "--split", "train=1", "--drop-negatives") == 0
    info = manifest(tmp_path / "o1")
    assert info["splits"]["train"]["images"] == 4
    assert {s["file"] for s in info["skipped"]} == {"empty_000.png", "empty_001.png", "unlabelled.jpg"}
    assert convert(data, "--out", tmp_path / "o2", "--workers", 1, "--split", "train=1",
                   "--unlabelled-as-negatives") == 0
    info = manifest(tmp_path / "o2")
    assert (info["splits"]["train"]["images"], info["splits"]["train"]["negatives"]) == (7, 3)


def test_jpeg_and_png_stored_as_they_are_other_formats_and_cmyk_re_encoded(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    box = [("a", 2, 2, 20, 20)]
    add_image(data, "photo.jpg", box)
    add_image(data, "drawing.png", box, file_format="PNG")
    add_image(data, "scan.bmp", box, file_format="BMP")
    add_image(data, "anim.gif", box, file_format="GIF")
    add_image(data, "page.tiff", box, file_format="TIFF")
    add_image(data, "web.webp", box, data=image_bytes(40, 30, "WEBP", lossless=True))
    add_image(data, "print.jpg", box, data=image_bytes(40, 30, "JPEG", mode="CMYK"))
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1") == 0
    info = {e["file"]: e for e in manifest(out)["images"]}
    records = {r["filename"].decode(): r for r in read_split(out, "train")}
    raw = {}
    for record in tf.data.TFRecordDataset([str(p) for p in out.glob("train-*.tfrecord")]):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        raw[feature["image/filename"].bytes_list.value[0].decode()] = feature
    for name in ("photo.jpg", "drawing.png"):
        assert raw[name]["image/encoded"].bytes_list.value[0] == (data / name).read_bytes()
        assert info[name]["reencoded"] is None
    for name in ("scan.bmp", "anim.gif", "page.tiff", "web.webp"):
        assert raw[name]["image/format"].bytes_list.value == [b"png"]
        assert "re-encoded to PNG" in info[name]["reencoded"]
        lossless = np.asarray(Image.open(data / name).convert("RGB"))
        np.testing.assert_array_equal(records[name]["image"], lossless)
    assert raw["print.jpg"]["image/format"].bytes_list.value == [b"jpeg"]
    assert Image.open(io.BytesIO(raw["print.jpg"]["image/encoded"].bytes_list.value[0])).mode == "RGB"
    assert "CMYK JPEG is re-encoded to RGB JPEG" in info["print.jpg"]["reencoded"]


def test_a_new_run_replaces_old_shards_and_a_failed_run_changes_nothing(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    class_dataset(data, {"a": 6})
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1", "--shards", 3) == 0
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1", "--shards", 2) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "label_map.pbtxt", "manifest.json", "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (data / "a_000.xml").write_text("<annotation><object>")
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either


def test_records_are_framed_like_tfrecords_with_lengths_and_checksums(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    class_dataset(data, {"a": 2})
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1") == 0
    raw = (out / "train-00000-of-00001.tfrecord").read_bytes()
    (length,) = struct.unpack_from("<Q", raw)
    assert len(raw) == 2 * 16 + length + struct.unpack_from("<Q", raw, 16 + length)[0]


def test_class_names_differing_only_by_case_or_spaces_are_reported(tmp_path, capsys):
    data = tmp_path / "data"
    add_image(data, "a.jpg", [("Person", 1, 1, 9, 9)], seed=1)
    add_image(data, "b.jpg", [("person", 1, 1, 9, 9)], seed=2)
    add_image(data, "c.jpg", [("person ", 1, 1, 9, 9), ("car", 2, 2, 8, 8)], seed=3)
    assert convert(data, "--out", tmp_path / "out", "--workers", 1, "--split", "train=1") == 0
    err = capsys.readouterr().err
    assert "class names differ only by case or surrounding spaces: 'Person' (e.g. a.xml), 'person' (e.g. b.xml), " \
           "'person ' (e.g. c.xml); likely a labelling mistake" in err
    info = manifest(tmp_path / "out")
    assert sum("differ only by case" in w["message"] for w in info["warnings"]) == 1
    assert set(info["label_map"]["classes"]) == {"Person", "person", "person ", "car"}


def test_a_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    data, out = tmp_path / "data", tmp_path / "out"
    class_dataset(data, {"a": 4})
    assert convert(data, "--out", out, "--workers", 1, "--split", "train=1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def failing_build(task):
        calls.append(task)
        if len(calls) == 3:
            raise OSError("disk full")
        return build_record(task)

    monkeypatch.setattr("tfodkit.dataset.convert.build_record", failing_build)
    with pytest.raises(OSError, match="disk full"):
        convert(data, "--out", out, "--workers", 1, "--split", "train=1", "--shards", 2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
