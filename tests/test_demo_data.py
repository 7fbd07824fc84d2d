"""The digits demo dataset: deterministic, LabelImg's own XML, varied sizes and classes, tight boxes."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfodkit import cli
from tfodkit.dataset import demo_data
from tfodkit.dataset.labelimg_xml import read_annotation
from tfodkit.errors import TfodkitError

NUM_IMAGES = 40


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("a") / "demo"
    demo_data.write_dataset(out, num_images=NUM_IMAGES, seed=0)
    return out


@pytest.fixture(scope="module")
def glyphs() -> demo_data.Glyphs:
    return demo_data.load_glyphs()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _iou(a, b) -> float:
    w = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    h = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    inter = max(w, 0) * max(h, 0)
    area = lambda box: (box.xmax - box.xmin) * (box.ymax - box.ymin)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_same_seed_gives_byte_identical_files_and_fewer_images_give_a_prefix(tmp_path, demo_dir):
    first = _files(demo_dir)
    again = tmp_path / "again" / "demo"
    demo_data.write_dataset(again, num_images=NUM_IMAGES, seed=0)
    assert _files(again) == first
    prefix = tmp_path / "prefix" / "demo"
    demo_data.write_dataset(prefix, num_images=5, seed=0)
    assert _files(prefix) == {name: data for name, data in first.items() if name in _files(prefix)}
    assert len(_files(prefix)) == 10
    other = tmp_path / "other" / "demo"
    demo_data.write_dataset(other, num_images=5, seed=1)
    assert all(_files(other)[name] != first[name] for name in _files(other))


def test_every_image_has_its_xml_with_real_size_and_1_to_6_digits_of_every_class(demo_dir):
    images = sorted(demo_dir.glob("*.jpg"))
    xmls = sorted(demo_dir.glob("*.xml"))
    assert len(images) == len(xmls) == NUM_IMAGES
    names, sides, heights = [], set(), []
    for xml in xmls:
        annotation = read_annotation(xml)
        with Image.open(demo_dir / annotation.filename) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert (annotation.width, annotation.height, annotation.depth) == (*image.size, 3)
        assert demo_data.MIN_SIDE <= annotation.width <= demo_data.MAX_SIDE
        assert demo_data.MIN_SIDE <= annotation.height <= demo_data.MAX_SIDE
        sides.update((annotation.width, annotation.height))
        assert 1 <= len(annotation.objects) <= demo_data.MAX_DIGITS
        for obj in annotation.objects:
            assert 0 < obj.xmin < obj.xmax < annotation.width and 0 < obj.ymin < obj.ymax < annotation.height
            assert all(float(v).is_integer() for v in (obj.xmin, obj.ymin, obj.xmax, obj.ymax))
            assert not obj.difficult and not obj.truncated
            heights.append(obj.ymax - obj.ymin)
        names += [obj.name for obj in annotation.objects]
        for a, b in itertools.combinations(annotation.objects, 2):
            assert _iou(a, b) <= demo_data.MAX_IOU
    counts = {name: names.count(name) for name in demo_data.CLASS_NAMES}
    assert set(names) == set(demo_data.CLASS_NAMES)
    assert min(counts.values()) >= len(names) / 10 / 3, counts
    assert len(sides) > NUM_IMAGES  # sizes vary
    # Ink heights spread over the 16-160 px range (the 8x8 grid rounds the smallest a little under 16).
    assert 10 <= min(heights) < 24 and 110 < max(heights) <= 1.1 * demo_data.MAX_DIGIT


def test_xml_is_byte_identical_to_labelimg_own_writer(demo_dir, tmp_path):
    pascal_voc_io = pytest.importorskip("libs.pascal_voc_io", reason="labelimg (PyPI) is not installed")
    for xml in sorted(demo_dir.glob("*.xml"))[:5]:
        annotation = read_annotation(xml)
        writer = pascal_voc_io.PascalVocWriter(
            "demo", annotation.filename, (annotation.height, annotation.width, 3),
            database_src="scikit-learn handwritten digits (tfodkit demo-data)", local_img_path=annotation.filename,
        )
        for obj in annotation.objects:
            writer.add_bnd_box(int(obj.xmin), int(obj.ymin), int(obj.xmax), int(obj.ymax), obj.name, 0)
        target = tmp_path / xml.name
        writer.save(str(target))
        assert xml.read_bytes() == target.read_bytes()
        shapes = pascal_voc_io.PascalVocReader(str(xml)).get_shapes()
        assert [shape[0] for shape in shapes] == [obj.name for obj in annotation.objects]


def test_boxes_are_tight_around_the_ink(glyphs):
    """Every edge row/column of a box holds ink; a few pixels outside it the scene is the bare background."""
    checked = 0
    for index in range(12):
        scene = demo_data.render_scene(np.random.default_rng([0, index]), glyphs)
        difference = np.abs(scene.image.astype(int) - scene.background.astype(int)).max(axis=2)
        outside = np.ones(difference.shape, bool)
        for box in scene.boxes:
            outside[max(box.ymin - 6, 0):box.ymax + 6, max(box.xmin - 6, 0):box.xmax + 6] = False
        assert difference[outside].max(initial=0) == 0
        for box in scene.boxes:
            inside = difference[box.ymin:box.ymax, box.xmin:box.xmax]
            edges = [inside[0], inside[-1], inside[:, 0], inside[:, -1]]
            assert min(edge.max() for edge in edges) >= 15, box
            assert inside.max() >= 60, box
            checked += 1
    assert checked >= 12


def test_written_jpeg_is_the_rendered_scene(demo_dir, glyphs):
    scene = demo_data.render_scene(np.random.default_rng([0, 3]), glyphs)
    written = np.asarray(Image.open(demo_dir / "digits_0003.jpg").convert("RGB"), dtype=float)
    assert written.shape == scene.image.shape
    assert np.abs(written - scene.image).mean() < 6  # JPEG error only
    annotation = read_annotation(demo_dir / "digits_0003.xml")
    assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in annotation.objects] == [
        (b.name, b.xmin, b.ymin, b.xmax, b.ymax) for b in scene.boxes
    ]


def test_refuses_a_folder_with_other_files_and_bad_counts(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TfodkitError, match="notes.txt"):
        demo_data.write_dataset(tmp_path, num_images=2)
    with pytest.raises(TfodkitError, match="--num-images"):
        demo_data.write_dataset(tmp_path / "x", num_images=0)


def test_cli_writes_the_dataset_and_reports_counts(tmp_path, capsys):
    assert cli.main(["demo-data", "--out", str(tmp_path / "demo"), "--num-images", "3", "--seed", "2"]) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    assert len(list((tmp_path / "demo").glob("*.xml"))) == 3
    assert cli.main(["demo-data", "--out", str(tmp_path / "demo"), "--num-images", "3", "--seed", "2"]) == 0
