"""Record building without protobuf or TensorFlow: same bytes as protobuf and TFRecordWriter, checks kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from labelimg_data import class_dataset
from tfodkit.dataset.matching import find_files
from tfodkit.dataset.records import RecordTask, build_record, probe_image
from tfodkit.dataset.shards import frame_parts
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, encode_example
from tfodkit.errors import TfodkitError
from tfodkit.protos import example_pb2

ROOT = Path(__file__).resolve().parents[1]


def _protobuf_example(image: EncodedImage, objects: list[ObjectBox]) -> bytes:
    """The same Example built with the protobuf library, serialised deterministically (keys in order)."""
    example = example_pb2.Example()
    feature = example.features.feature
    for key, values in {
        "image/encoded": [image.encoded], "image/format": [image.image_format.encode()],
        "image/filename": [image.filename.encode()], "image/source_id": [image.source_id.encode()],
        "image/key/sha256": [image.sha256.encode()],
        "image/object/class/text": [box.name.encode() for box in objects],
        "image/object/view": [box.view.encode() for box in objects],
    }.items():
        feature[key].bytes_list.value.extend(values)
    for key, numbers in {
        "image/height": [image.height], "image/width": [image.width],
        "image/object/class/label": [box.label for box in objects],
        "image/object/difficult": [int(box.difficult) for box in objects],
        "image/object/truncated": [int(box.truncated) for box in objects],
    }.items():
        feature[key].int64_list.value.extend(numbers)
    for key, name in (("xmin", "xmin"), ("xmax", "xmax"), ("ymin", "ymin"), ("ymax", "ymax")):
        feature[f"image/object/bbox/{key}"].float_list.value.extend([getattr(box, name) for box in objects])
    return example.SerializeToString(deterministic=True)


@pytest.mark.parametrize("objects", [
    [],
    [ObjectBox("cat", 1, 0.1, 0.2, 0.5, 0.6)],
    [ObjectBox("Café 猫", 300, 0.0, 0.0, 1.0, 1.0, difficult=True, truncated=True, view="Left"),
     ObjectBox("", -1, 1 / 3, 0.25, 0.75, 0.999999, view=""), ObjectBox("x" * 300, 2**40, 0.5, 0.5, 0.5, 0.5)],
])
@pytest.mark.parametrize("size", [0, 100, 127, 128, 16384, 150_000])
def test_example_bytes_are_protobufs_deterministic_serialisation(objects, size):
    image = EncodedImage(os.urandom(size), "jpeg", 480, 100_000, "dir/é.jpg", "123456789", "ab" * 32)
    assert encode_example(image, objects) == _protobuf_example(image, objects)


def test_framing_of_parts_matches_tensorflows_writer(tmp_path):
    payloads = [[b""], [os.urandom(5), b"", os.urandom(70001)], [os.urandom(1), os.urandom(1024), os.urandom(3)]]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
        for parts in payloads:
            writer.write(b"".join(parts))
    framed = [b"".join(frame_parts(parts)) for parts in payloads]
    assert b"".join(framed) == (tmp_path / "tf.tfrecord").read_bytes()


def test_an_image_changed_after_its_check_is_refused(tmp_path):
    class_dataset(tmp_path, {"a": 1})
    path = next(tmp_path.glob("*.jpg"))
    probe = probe_image(path)
    assert probe.info is not None
    task = RecordTask(path, probe.info, path.name, "1", (), exif_transpose=False)
    record = b"".join(build_record(task))  # unchanged: builds
    example = tf.train.Example.FromString(record[12:-4])  # inside the length + CRC header and the data CRC
    assert example.features.feature["image/encoded"].bytes_list.value == [path.read_bytes()]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte differs
    path.write_bytes(bytes(data))
    with pytest.raises(TfodkitError, match="changed during the conversion"):
        build_record(task)


def test_dataset_files_are_found_like_a_recursive_glob(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("a.JPG", "b.png", "notes.txt", "sub/c.jpeg", "sub/deeper/d.Png", ".hidden.jpg", "elsewhere/e.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub" / "link.jpg").symlink_to(tmp_path / "a.JPG")
    (tmp_path / "sub" / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "sub" / "folder_link").symlink_to(tmp_path / "elsewhere")
    root = tmp_path
    expected = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())
    assert find_files(root, (".jpg", ".jpeg", ".png")) == expected
    assert "sub/link.jpg" in expected and not any("folder_link" in name for name in expected)


def test_two_workers_started_from_the_cli_write_the_same_records(tmp_path):
    # A CLI process runs a single thread, so its workers are forked (pytest's process, with TensorFlow
    # loaded, starts them from a fresh interpreter instead): both ways must give the same bytes.
    data = tmp_path / "data"
    class_dataset(data, {"dog": 20, "cat": 15}, negatives=3)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        subprocess.run([sys.executable, "-m", "tfodkit.cli", "make-tfrecords", str(data), "--out", str(out),
                        "--workers", str(workers), "--shards", "2"], cwd=ROOT, check=True, capture_output=True)
        outputs[workers] = {path.name: path.read_bytes() for path in out.glob("*.tfrecord")}
    assert outputs[1] == outputs[2] and len(outputs[1]) == 6  # train, val, test: 2 shards each
