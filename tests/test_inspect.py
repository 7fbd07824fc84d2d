"""inspect-dataset and inspect-tfrecord on a real demo set: counts match the XML, drawings show the boxes."""

import hashlib
import shutil
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfodkit import cli, label_map
from tfodkit.dataset import demo_data, record_files, statistics
from tfodkit.dataset.convert import ConvertOptions, convert
from tfodkit.dataset.draw import class_colour
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, encode_example
from tfodkit.errors import TfodkitError

NUM_IMAGES = 16
NUM_TRAIN = 10  # of the records written here without the converter


def _xml_objects(path: Path) -> tuple[str, int, int, list[tuple[str, int, int, int, int]]]:
    """Independent reading of one demo XML with the standard library: filename, size and objects."""
    root = ElementTree.parse(path).getroot()
    objects = [
        (o.findtext("name"), *(int(o.find("bndbox").findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")))
        for o in root.iter("object")
    ]
    return root.findtext("filename"), int(root.findtext("size/width")), int(root.findtext("size/height")), objects


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "demo"
    demo_data.write_dataset(out, num_images=NUM_IMAGES, seed=7)
    return out


def _write_records_without_class_text(demo_dir: Path, out: Path, labels: label_map.LabelMap) -> None:
    """train-/val- shards of the demo set holding class ids only, as some other tools write them."""
    out.mkdir(parents=True)
    labels.write(out / record_files.LABEL_MAP_NAME)
    xmls = sorted(demo_dir.glob("*.xml"))
    for split, part in (("train", xmls[:NUM_TRAIN]), ("val", xmls[NUM_TRAIN:])):
        with tf.io.TFRecordWriter(str(out / f"{split}-00000-of-00001.tfrecord")) as writer:
            for number, xml in enumerate(part, start=1):
                filename, width, height, objects = _xml_objects(xml)
                data = (demo_dir / filename).read_bytes()
                image = EncodedImage(data, "jpeg", height, width, filename, str(number),
                                     hashlib.sha256(data).hexdigest())
                boxes = [ObjectBox("", labels.ids[name], x0 / width, y0 / height, x1 / width, y1 / height)
                         for name, x0, y0, x1, y1 in objects]
                example = tf.train.Example.FromString(encode_example(image, boxes))
                del example.features.feature["image/object/class/text"]
                writer.write(example.SerializeToString())


@pytest.fixture(scope="module")
def converted(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]]]:
    """The demo set through make-tfrecords' converter, and the XML files of each split per its manifest."""
    out = tmp_path_factory.mktemp("records") / "tfrecords"
    result = convert(ConvertOptions(images=demo_dir, annotations=demo_dir, out=out,
                                    split={"train": 0.6, "val": 0.4}, seed=0, workers=1))
    by_split: dict[str, list[Path]] = {"train": [], "val": []}
    for image in result.manifest["images"]:
        by_split[image["split"]].append(demo_dir / image["xml"])
    return out, by_split


def _expected(xmls: list[Path]) -> tuple[Counter, Counter, list[int], float]:
    boxes, images, per_image, widest = Counter(), Counter(), [], 0.0
    for xml in xmls:
        _, width, _, objects = _xml_objects(xml)
        boxes.update(o[0] for o in objects)
        images.update({o[0] for o in objects})
        per_image.append(len(objects))
        widest = max([widest] + [(x1 - x0) / width for _, x0, _, x1, _ in objects])
    return boxes, images, per_image, widest


def _assert_split_matches(split: statistics.SplitStatistics, xmls: list[Path]) -> None:
    boxes, images, per_image, widest = _expected(xmls)
    assert split.images == len(xmls)
    assert split.boxes_per_class == boxes
    assert split.images_per_class == images
    assert sorted(split.boxes_per_image) == sorted(per_image)  # records may be shuffled
    assert split.images_without_objects == per_image.count(0)
    assert max(split.widths) == pytest.approx(widest, abs=1e-6)
    assert len(split.aspect_ratios) == sum(per_image)


def test_labelimg_folder_statistics_match_the_xml(demo_dir):
    stats = statistics.collect(str(demo_dir))
    assert stats.kind == "LabelImg XML" and list(stats.splits) == [statistics.LABELIMG_SPLIT]
    _assert_split_matches(stats.splits[statistics.LABELIMG_SPLIT], sorted(demo_dir.glob("*.xml")))


def test_labelimg_sub_folders_are_splits(demo_dir, tmp_path):
    xmls = sorted(demo_dir.glob("*.xml"))
    for folder, part in (("val", xmls[:3]), ("train", xmls[3:8])):
        (tmp_path / folder).mkdir()
        for xml in part:
            shutil.copy(xml, tmp_path / folder / xml.name)
    stats = statistics.collect(str(tmp_path))
    assert list(stats.splits) == ["train", "val"]
    _assert_split_matches(stats.splits["val"], xmls[:3])


def test_tfrecord_statistics_match_the_xml_per_split(converted):
    records_dir, by_split = converted
    stats = statistics.collect(str(records_dir))
    assert stats.kind == "TFRecord" and list(stats.splits) == ["train", "val"]
    assert sum(len(xmls) for xmls in by_split.values()) == NUM_IMAGES
    for split, xmls in by_split.items():
        _assert_split_matches(stats.splits[split], xmls)
    assert stats.class_order == list(demo_data.CLASS_NAMES)  # label-map order


def test_records_without_class_text_are_named_through_the_label_map(demo_dir, tmp_path):
    _write_records_without_class_text(demo_dir, tmp_path / "ids", label_map.from_class_names(demo_data.CLASS_NAMES))
    stats = statistics.collect(str(tmp_path / "ids" / "train-*.tfrecord"))
    _assert_split_matches(stats.splits["train"], sorted(demo_dir.glob("*.xml"))[:NUM_TRAIN])


def test_inspect_dataset_prints_the_tables(converted, capsys):
    records_dir, by_split = converted
    assert cli.main(["inspect-dataset", str(records_dir)]) == 0
    out = capsys.readouterr().out
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():  # the first row of each split is in the overview table
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    for split, xmls in by_split.items():
        boxes, _, _, _ = _expected(xmls)
        assert rows[split][:3] == [split, str(len(xmls)), str(sum(boxes.values()))]
    for heading in ("images by number of boxes", "boxes per class", "box geometry", "aspect w/h", "sqrt(area)"):
        assert heading in out


def test_inspect_tfrecord_draws_each_box_in_its_class_colour(converted, demo_dir, tmp_path, capsys):
    records_dir, by_split = converted
    ids = label_map.load(records_dir / record_files.LABEL_MAP_NAME).ids
    out = tmp_path / "drawn"
    rc = cli.main(["inspect-tfrecord", str(records_dir / "train-*.tfrecord"), "--draw", str(out), "-n", "4"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4 and "4 records read" in printed and "0 with problems" in printed
    edge_points = matching = 0
    xml_by_stem = {xml.stem: xml for xml in by_split["train"]}
    for png in pngs:
        filename, width, height, objects = _xml_objects(xml_by_stem[png.stem.split("_", 1)[1]])
        drawn = np.asarray(Image.open(png))
        assert drawn.shape == (height, width, 3)
        for name, x0, y0, x1, y1 in objects:
            colour = class_colour(ids[name])
            middle_x, middle_y = (x0 + x1) // 2, (y0 + y1) // 2
            for x, y in ((x0, middle_y), (x1 - 1, middle_y), (middle_x, y1 - 1)):
                edge_points += 1
                matching += tuple(drawn[y, x]) == colour
        original = np.asarray(Image.open(demo_dir / filename).convert("RGB"), dtype=int)
        # Away from the boxes the drawing is the image (TF and Pillow JPEG decoders differ by a few levels).
        assert (np.abs(drawn.astype(int) - original).max(axis=2) <= 6).mean() > 0.9
    assert edge_points >= 8 and matching / edge_points >= 0.9


def test_inspect_tfrecord_reports_records_that_would_train_wrongly(tmp_path, capsys):
    path = tmp_path / "image.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    encoded = path.read_bytes()
    image = EncodedImage(encoded, "png", 99, 30, "image.png", "1", hashlib.sha256(encoded).hexdigest())
    boxes = [ObjectBox("cat", 1, 0.1, 0.1, 1.5, 0.5), ObjectBox("dog", 2, 0.5, 0.5, 0.4, 0.9)]
    with tf.io.TFRecordWriter(str(tmp_path / "bad.tfrecord")) as writer:
        writer.write(encode_example(image, boxes))
    label_map.from_class_names(["cat"]).write(tmp_path / "label_map.pbtxt")
    assert cli.main(["inspect-tfrecord", str(tmp_path / "bad.tfrecord")]) == 1
    out = capsys.readouterr().out
    assert "image is 30x20 but image/width,height say 30x99" in out
    assert "box #0 lies outside the image" in out
    assert "box #1 is empty" in out
    assert "classes not in the label map: dog" in out


def test_unreadable_records_and_missing_inputs_name_the_file(tmp_path, capsys):
    broken = tmp_path / "train-00000-of-00001.tfrecord"
    broken.write_bytes(b"this is not a TFRecord file at all")
    assert cli.main(["inspect-tfrecord", str(broken)]) == 1
    assert str(broken) in capsys.readouterr().err
    with pytest.raises(TfodkitError, match=str(broken)):
        statistics.collect(str(broken))
    with pytest.raises(TfodkitError, match="no files match"):
        record_files.find_records(str(tmp_path / "val-*.tfrecord"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TfodkitError, match="no LabelImg .xml files"):
        statistics.collect(str(tmp_path / "empty"))


def test_split_names_come_from_od_api_and_tfodkit_shard_names():
    assert record_files.split_name(Path("train-00000-of-00004.tfrecord")) == "train"
    assert record_files.split_name(Path("val.record-00001-of-00010")) == "val"
    assert record_files.split_name(Path("pets_test.record")) == "pets_test"
