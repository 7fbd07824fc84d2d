"""Each kind of bad LabelImg input from the issue: the message (file, line) in strict mode, with nothing
written, and what the manifest records under --skip-bad (or as a warning)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from labelimg_data import add_image, class_dataset, image_bytes, xml_text
from tfodkit import label_map
from tfodkit.cli import main
from tfodkit.dataset.example_decoder import ExampleDecoder


def run(capsys, data: Path, out: Path, *extra: object) -> tuple[int, str]:
    code = main(["make-tfrecords", str(data), "--out", str(out), "--workers", "1", "--split", "train=1",
                 *map(str, extra)])
    return code, capsys.readouterr().err


def strict_fails_then_skip_bad_lists(capsys, tmp_path: Path, data: Path, message: str) -> dict:
    """Strict: exit 1, the message, no output file. --skip-bad: exit 0; returns the manifest."""
    out = tmp_path / "out"
    code, err = run(capsys, data, out)
    assert code == 1
    assert message in err, err
    assert not out.exists() or not any(out.iterdir())
    code, err = run(capsys, data, out, "--skip-bad")
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text())


def records(out: Path) -> dict[str, dict]:
    decoder = ExampleDecoder(label_map.load(out / "label_map.pbtxt"))
    files = [str(path) for path in sorted(out.glob("train-*.tfrecord"))]
    decoded = ({k: v.numpy() for k, v in decoder(r).items()} for r in tf.data.TFRecordDataset(files))
    return {record["filename"].decode(): record for record in decoded}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    class_dataset(folder, {"cat": 2})
    return folder


def test_malformed_xml_names_file_and_line(capsys, tmp_path, data):
    add_image(data, "bad.jpg", None, seed=50)
    (data / "bad.xml").write_text("<annotation>\n<filename>bad.jpg</filename>\n<object><name>cat</name>\n")
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data, f"{data / 'bad.xml'}:4: malformed XML")
    skipped = {entry["file"]: entry for entry in info["skipped"]}
    assert skipped["bad.xml"]["line"] == 4 and "malformed XML" in skipped["bad.xml"]["reason"]
    assert "bad.jpg" not in {entry["file"] for entry in info["images"]}  # not turned into a negative


def test_xml_whose_filename_has_no_image_never_follows_path_or_dotdot(capsys, tmp_path, data):
    outside = add_image(tmp_path / "outside", "secret.jpg", None, seed=51)
    (data / "escape.xml").write_text(xml_text("../outside/secret.jpg", 40, 30, [("cat", 1, 1, 9, 9)],
                                              path=str(outside)))
    (data / "lost.xml").write_text(xml_text("lost.jpg", 40, 30, [("cat", 1, 1, 9, 9)], path=str(outside)))
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data, "points outside the dataset root")
    reasons = {entry["file"]: entry["reason"] for entry in info["skipped"]}
    assert "'../outside/secret.jpg' points outside the dataset root (never followed)" in reasons["escape.xml"]
    assert "<filename> 'lost.jpg' is not in ./" in reasons["lost.xml"]
    assert "<path> is never followed" in reasons["lost.xml"]
    assert sorted(records(tmp_path / "out")) == ["cat_000.jpg", "cat_001.jpg"]


def _flip_byte_after(data: bytes, marker: bytes) -> bytes:
    position = data.index(marker) + 20
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:]


@pytest.mark.parametrize("name, content, message", [
    ("garbage.jpg", b"this is not an image", "not a readable image"),
    ("cut.jpg", image_bytes(40, 30, "JPEG", seed=3)[:-200], "truncated JPEG"),
    ("cut.png", image_bytes(40, 30, "PNG", seed=3)[:-30], "truncated"),
    ("flipped.png", _flip_byte_after(image_bytes(40, 30, "PNG", seed=3), b"IDAT"), "IDAT chunk CRC mismatch"),
])
def test_unreadable_or_truncated_image(capsys, tmp_path, data, name, content, message):
    add_image(data, name, [("cat", 1, 1, 9, 9)], data=content)
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data, f"{data / name}: ")
    assert [(e["file"], message in e["reason"]) for e in info["skipped"]] == [(name, True)]


def test_xml_size_differs_from_the_real_size_uses_the_real_size(capsys, tmp_path, data):
    add_image(data, "wide.jpg", None, width=80, height=60, seed=52)
    (data / "wide.xml").write_text(xml_text("wide.jpg", 40, 30, [("cat", 8, 6, 40, 30)]))
    code, err = run(capsys, data, tmp_path / "out")
    assert code == 0
    assert "XML size 40x30 differs from the real image size 80x60" in err
    info = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert any("differs from the real image size 80x60" in w["message"] for w in info["warnings"])
    np.testing.assert_allclose(records(tmp_path / "out")["wide.jpg"]["boxes"], [[0.1, 0.1, 0.5, 0.5]], atol=1e-6)


def test_inverted_or_empty_box_is_rejected_and_listed(capsys, tmp_path, data):
    add_image(data, "boxes.jpg", [("cat", 10, 5, 10, 20), ("cat", 2, 20, 12, 8), ("cat", 1, 1, 9, 9)], seed=53)
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data, f"{data / 'boxes.xml'}:9: object 'cat' "
                                                                    "rejected: xmin 10 >= xmax 10")
    skipped = [(e["file"], e["line"], e["reason"]) for e in info["skipped"]]
    assert skipped == [("boxes.xml", 9, "object 'cat' rejected: xmin 10 >= xmax 10"),
                       ("boxes.xml", 21, "object 'cat' rejected: ymin 20 >= ymax 8")]
    assert records(tmp_path / "out")["boxes.jpg"]["boxes"].shape == (1, 4)  # the valid object stays


def test_boxes_outside_the_image_are_clipped_with_a_warning(capsys, tmp_path, data):
    add_image(data, "edge.jpg", [("cat", -5, -3, 50, 20), ("cat", 45, 1, 60, 9)], seed=54)
    code, err = run(capsys, data, tmp_path / "out")
    assert code == 1 and "lies outside the 40x30 image" in err  # the second box is entirely outside
    code, err = run(capsys, data, tmp_path / "out", "--skip-bad")
    assert code == 0 and "extends outside the 40x30 image; clipped" in err
    info = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [w["line"] for w in info["warnings"] if "clipped" in w["message"]] == [9]
    np.testing.assert_allclose(records(tmp_path / "out")["edge.jpg"]["boxes"], [[0, 0, 20 / 30, 1]], atol=1e-6)


def test_float_coordinates_are_accepted(capsys, tmp_path, data):
    add_image(data, "float.jpg", [("cat", 2.25, 3.5, 17.75, 20.125)], seed=55)
    code, err = run(capsys, data, tmp_path / "out")
    assert code == 0, err
    np.testing.assert_allclose(records(tmp_path / "out")["float.jpg"]["boxes"],
                               [[3.5 / 30, 2.25 / 40, 20.125 / 30, 17.75 / 40]], atol=1e-6)


def _rotated_jpeg() -> bytes:
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:10, :20] = 255  # white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_exif_orientation_is_warned_and_exif_transpose_rotates_the_image(capsys, tmp_path, data):
    add_image(data, "phone.jpg", [("cat", 1, 1, 19, 9)], data=_rotated_jpeg())
    code, err = run(capsys, data, tmp_path / "out")
    assert code == 0 and "EXIF orientation 6: pixels are stored unrotated" in err
    stored = records(tmp_path / "out")["phone.jpg"]
    assert stored["image"].shape == (30, 40, 3)
    np.testing.assert_allclose(stored["boxes"], [[1 / 30, 1 / 40, 9 / 30, 19 / 40]], atol=1e-6)

    (data / "phone.xml").write_text(xml_text("phone.jpg", 30, 40, [("cat", 21, 1, 29, 19)]))  # drawn upright
    code, err = run(capsys, data, tmp_path / "out", "--exif-transpose")
    assert code == 0 and "pixels rotated upright (--exif-transpose)" in err
    upright = records(tmp_path / "out")["phone.jpg"]
    assert upright["image"].shape == (40, 30, 3)
    assert upright["image"][:19, 21:].mean() > 200 and upright["image"][20:, :20].mean() < 50
    info = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {e["file"]: e["reencoded"] for e in info["images"]}["phone.jpg"].startswith("rotated upright")


def test_two_xml_files_for_one_image(capsys, tmp_path, data):
    add_image(data, "dog.jpg", [("cat", 1, 1, 9, 9)], seed=56)
    (data / "dog copy.xml").write_text(xml_text("dog.jpg", 40, 30, [("cat", 2, 2, 9, 9)]))
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data,
                                            f"{data / 'dog.jpg'}: described by 2 XML files: dog copy.xml, dog.xml")
    assert [e["file"] for e in info["skipped"]] == ["dog.jpg"]


def test_empty_annotation_folder_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, tmp_path / "empty", tmp_path / "out")
    assert code == 1 and f"no LabelImg XML files (*.xml) in {tmp_path / 'empty'}: the folder is empty" in err
    add_image(tmp_path / "unlabelled", "a.jpg", None)
    code, err = run(capsys, tmp_path / "unlabelled", tmp_path / "out")
    assert code == 1 and "1 image(s) but no annotations: label them in LabelImg" in err
    assert not (tmp_path / "out").exists()


def test_xxe_and_billion_laughs_files_are_refused(capsys, tmp_path, data):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    add_image(data, "xxe.jpg", None, seed=57)
    (data / "xxe.xml").write_text(f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>\n'
                                  "<annotation><filename>xxe.jpg</filename><object><name>&x;</name><bndbox>"
                                  "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
                                  "</annotation>")
    add_image(data, "lol.jpg", None, seed=58)
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 9))
    (data / "lol.xml").write_text(f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY l0 "lol">{entities}]>\n'
                                  "<annotation><filename>lol.jpg</filename><folder>&l8;</folder></annotation>")
    info = strict_fails_then_skip_bad_lists(capsys, tmp_path, data, f"{data / 'xxe.xml'}:2: the XML declares entities")
    reasons = {e["file"]: e["reason"] for e in info["skipped"]}
    assert set(reasons) == {"xxe.xml", "lol.xml"} and all("refused" in r for r in reasons.values())
    assert "TOP-SECRET" not in (tmp_path / "out" / "manifest.json").read_text()
