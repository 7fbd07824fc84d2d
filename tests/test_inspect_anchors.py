"""inspect-anchors on the digits demo set with the real templates: the poorest buckets are the small digits and
the thin 1s, the suggested --set overrides build and match more boxes, and the figures agree with plain NumPy."""

import copy
import shlex
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import demo_records

from tfodkit import cli
from tfodkit.anchor_fit.coverage import config_matcher, measure
from tfodkit.anchor_fit.report import analyse
from tfodkit.anchor_fit.search import DEFAULT_MAX_GROWTH
from tfodkit.config.customize import PipelineChoices, new_pipeline
from tfodkit.config.loader import check_pipeline, pipeline_text
from tfodkit.config.overrides import apply_overrides
from tfodkit.model.builder import build_ssd

TEMPLATES = ("ssd_mobilenet_v2_320x320", "ssd_mobilenet_v2_fpnlite_320x320")
NUM_IMAGES = 160  # 120 train images, about 430 digits


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_records(tmp_path_factory.mktemp("anchors"), NUM_IMAGES, seed=0, split={"train": 0.75, "val": 0.25})


@pytest.fixture(scope="module")
def configs(records: Path) -> dict[str, Path]:
    paths = {}
    for name in TEMPLATES:
        config = new_pipeline(PipelineChoices(model=name, label_map=str(records / "label_map.pbtxt"),
                                              train=str(records / "train-*"), val=str(records / "val-*")))
        paths[name] = records.parent / f"{name}.config"
        paths[name].write_text(pipeline_text(config), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def fits(configs: dict[str, Path]):
    from tfodkit.config.loader import load_pipeline

    return {name: (load_pipeline(path), analyse(load_pipeline(path))) for name, path in configs.items()}


@pytest.mark.parametrize("name", TEMPLATES)
def test_small_digits_and_thin_ones_are_the_poorest(fits, name):
    _, fit = fits[name]
    poorest = fit.poorest()
    sizes = [g.name for g in poorest if g.kind == "size"]
    aspects = [g.name for g in poorest if g.kind == "aspect"]
    classes = [g.name for g in poorest if g.kind == "class"]
    assert sizes[0] == "small"
    assert set(aspects) & {"w/h < 1/4", "w/h 1/4-1/3"}, aspects
    assert "1" in classes, classes


@pytest.mark.parametrize("name", TEMPLATES)
def test_suggested_overrides_build_and_match_more_boxes(fits, configs, name):
    config, fit = fits[name]
    suggestion = fit.suggestion
    assert suggestion.improved
    variant = copy.deepcopy(config)
    apply_overrides(variant, list(suggestion.best.overrides))
    check_pipeline(variant, name)
    model = build_ssd(variant)  # the box predictor follows the new anchors per location
    anchors = model.anchors.numpy()
    assert len(anchors) <= DEFAULT_MAX_GROWTH * fit.coverage.num_anchors
    rerun = measure(anchors, fit.groundtruth, config_matcher(variant))
    assert rerun.share == pytest.approx(suggestion.best.coverage.share)
    assert rerun.share > fit.coverage.share + 0.05
    small_before = [g for g in fit.groups() if g.name == "small"][0]
    small_after = [g for g in fit.groups(rerun) if g.name == "small"][0]
    assert small_after.share >= small_before.share


def _plain_boxes(record_glob: str) -> list[np.ndarray]:
    """Each record's boxes read with tf.train.Example, not tfodkit's decoder: [n, 4] ymin, xmin, ymax, xmax."""
    boxes = []
    for path in sorted(tf.io.gfile.glob(record_glob)):
        for serialized in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(serialized.numpy()).features.feature
            columns = [feature[f"image/object/bbox/{key}"].float_list.value for key in ("ymin", "xmin", "ymax", "xmax")]
            if len(columns[0]):
                boxes.append(np.stack([np.array(column, np.float32) for column in columns], axis=1))
    return boxes


def _numpy_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    top = np.maximum(boxes[:, None, 0], anchors[None, :, 0])
    left = np.maximum(boxes[:, None, 1], anchors[None, :, 1])
    bottom = np.minimum(boxes[:, None, 2], anchors[None, :, 2])
    right = np.minimum(boxes[:, None, 3], anchors[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(boxes)[:, None] + area(anchors)[None, :] - inter)


@pytest.mark.parametrize("name", TEMPLATES)
def test_figures_match_a_plain_numpy_computation(fits, records, name):
    config, fit = fits[name]
    anchors = build_ssd(config).anchors.numpy().astype(np.float64)  # the model's anchors, not inspect-anchors' call
    threshold = config.model.ssd.matcher.argmax_matcher.matched_threshold
    images = _plain_boxes(str(records / "train-*"))
    assert sum(len(b) for b in images) == len(fit.coverage.best_iou)
    offset = 0
    for boxes in images[:6]:
        iou = _numpy_iou(boxes.astype(np.float64), anchors)
        count = len(boxes)
        np.testing.assert_allclose(fit.coverage.best_iou[offset:offset + count], iou.max(axis=1), atol=1e-5)
        # The argmax matcher by hand: each anchor goes to its best box when that IoU reaches the threshold ...
        owner = np.where(iou.max(axis=0) >= threshold, iou.argmax(axis=0), -1)
        matched = np.array([(owner == row).any() for row in range(count)])
        np.testing.assert_array_equal(fit.coverage.matched[offset:offset + count], matched)
        # ... and force_match_for_each_row gives each box its best anchor (the first box wins a shared one).
        for row in range(count):
            best_column = iou[row].argmax()
            if not (iou[:row].argmax(axis=1) == best_column).any():
                owner[best_column] = row
        positive = np.array([(owner == row).any() for row in range(count)])
        np.testing.assert_array_equal(fit.coverage.positive[offset:offset + count], positive)
        offset += count
    small = fit.groups()[0]
    heights = np.concatenate(images)[:, 2] - np.concatenate(images)[:, 0]
    widths = np.concatenate(images)[:, 3] - np.concatenate(images)[:, 1]
    assert small.name == "small" and small.boxes == int((heights * widths * 320 * 320 < 32 * 32).sum())


def test_cli_prints_overrides_that_parse_and_draws_the_histogram(fits, configs, tmp_path, capsys):
    name = "ssd_mobilenet_v2_320x320"
    png = tmp_path / "iou.png"
    assert cli.main(["inspect-anchors", str(configs[name]), "--histogram", str(png)]) == 0
    out = capsys.readouterr().out
    assert "worst classes: " in out and "poorest buckets" in out and "size small" in out
    assert "not always a better model" in out  # a suggestion is something to try with a run, not a sure fix
    command = next(line for line in out.splitlines() if line.strip().startswith("tfodkit train"))
    words = shlex.split(command)
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert tuple(overrides) == fits[name][1].suggestion.best.overrides
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The same overrides given back to inspect-anchors: the config's own share is now the suggested one.
    sets = [arg for override in overrides for arg in ("--set", override)]
    assert cli.main(["inspect-anchors", str(configs[name]), "--no-search", *sets]) == 0
    after = capsys.readouterr().out
    share = f"{fits[name][1].suggestion.best.coverage.share:.1%}"
    assert any(line.startswith("matched (") and line.endswith(f"({share})") for line in after.splitlines())


def test_inspect_pipeline_records_adds_the_anchors_section(configs, capsys):
    assert cli.main(["inspect-pipeline", str(configs["ssd_mobilenet_v2_320x320"]), "--no-model", "--records"]) == 0
    out = capsys.readouterr().out
    assert "anchors (tfodkit inspect-anchors):" in out and "worst classes: " in out


def test_records_that_match_nothing_are_a_user_error(configs, tmp_path, capsys):
    missing = str(tmp_path / "nothing-*.tfrecord")
    assert cli.main(["inspect-anchors", str(configs["ssd_mobilenet_v2_320x320"]), "--records", missing]) == 1
    assert f"--records {missing}: no files match" in capsys.readouterr().err
