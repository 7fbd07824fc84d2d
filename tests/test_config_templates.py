"""Pipeline templates, `tfodkit new-pipeline` and `tfodkit inspect-pipeline`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from google.protobuf.message import Message

from tfodkit import cli
from tfodkit.config.customize import cosine_schedule
from tfodkit.config.loader import load_pipeline, parse_pipeline_text
from tfodkit.config.paths import PLACEHOLDER
from tfodkit.config.templates import TEMPLATES, template_text
from tfodkit.label_map import from_class_names

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
# Template -> (zoo config it keeps the architecture of, fields the template changes on purpose).
ZOO_SOURCES = {
    "ssd_mobilenet_v2_320x320": ("ssd_mobilenet_v2_320x320_coco17_tpu-8", {}),
    "ssd_mobilenet_v2_fpnlite_320x320": ("ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8", {}),
    "ssd_mobilenet_v2_fpnlite_640x640": ("ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8", {}),
    "ssdlite_mobilenet_v2_320x320": (
        "ssdlite_mobilenet_v2_coco",
        {"type": "ssd_mobilenet_v2_keras", "override_base_feature_extractor_hyperparams": True},
    ),
}


def _reference(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it ships beside the repo in CI)")
    return path


def _effectively_equal(a: Message, b: Message, path: str = "") -> list[str]:
    """Fields whose effective values (defaults included) differ between two messages of one type."""
    differences = []
    for field in a.DESCRIPTOR.fields:
        where = f"{path}.{field.name}".lstrip(".")
        value_a, value_b = getattr(a, field.name), getattr(b, field.name)
        if field.message_type is None:
            if (list(value_a) if field.is_repeated else value_a) != (list(value_b) if field.is_repeated else value_b):
                differences.append(where)
        elif field.is_repeated:
            if len(value_a) != len(value_b):
                differences.append(where)
            for index, (item_a, item_b) in enumerate(zip(value_a, value_b)):
                differences.extend(_effectively_equal(item_a, item_b, f"{where}[{index}]"))
        elif a.HasField(field.name) != b.HasField(field.name):
            differences.append(where)
        elif a.HasField(field.name):
            differences.extend(_effectively_equal(value_a, value_b, where))
    return differences


def _input_side(name: str) -> int:
    """The input size a template's name promises (..._320x320 -> 320)."""
    height, width = re.fullmatch(r".*_(\d+)x(\d+)", name).groups()
    assert height == width
    return int(height)


def _batch_norms(ssd) -> list:
    """The batch_norm blocks of the feature extractor's and the box predictor's conv_hyperparams."""
    predictor = ssd.box_predictor
    predictor = getattr(predictor, predictor.WhichOneof("box_predictor_oneof"))
    return [ssd.feature_extractor.conv_hyperparams.batch_norm, predictor.conv_hyperparams.batch_norm]


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_user_copies_equal_packaged_templates(name: str) -> None:
    assert (REPO / "pipelines" / f"{name}.config").read_text() == template_text(name)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_load_with_the_agreed_training_settings(name: str) -> None:
    config = load_pipeline(REPO / "pipelines" / f"{name}.config")
    ssd = config.model.ssd
    side = _input_side(name)
    assert (ssd.image_resizer.fixed_shape_resizer.height, ssd.image_resizer.fixed_shape_resizer.width) == (side, side)
    assert ssd.num_classes == 10
    train = config.train_config
    assert train.batch_size == 8
    assert train.optimizer.WhichOneof("optimizer") == "momentum_optimizer"
    cosine = cosine_schedule(config)
    assert cosine.learning_rate_base == pytest.approx(0.04)
    assert cosine.total_steps == train.num_steps
    assert cosine.warmup_steps == train.num_steps // 20
    assert [norm.decay for norm in _batch_norms(ssd)] == [pytest.approx(0.97)] * 2
    paths = [config.train_input_reader.label_map_path, *config.train_input_reader.tf_record_input_reader.input_path,
             config.eval_input_reader[0].label_map_path, *config.eval_input_reader[0].tf_record_input_reader.input_path]
    assert all(path.startswith(PLACEHOLDER) for path in paths)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_keep_the_zoo_architecture(name: str) -> None:
    zoo_name, renamed_extractor_fields = ZOO_SOURCES[name]
    zoo = load_pipeline(_reference("od_api_configs", f"{zoo_name}.config")).model.ssd
    template = load_pipeline(REPO / "pipelines" / f"{name}.config").model.ssd
    zoo.num_classes = 10
    zoo.image_resizer.fixed_shape_resizer.height = zoo.image_resizer.fixed_shape_resizer.width = _input_side(name)
    zoo.ClearField("inplace_batchnorm_update")  # accepted, no effect
    zoo.matcher.argmax_matcher.ClearField("use_matmul_gather")  # accepted, no effect
    for norm in _batch_norms(zoo):  # a training setting of the templates, checked above
        norm.decay = 0.97
    for field, value in renamed_extractor_fields.items():
        setattr(zoo.feature_extractor, field, value)
    assert _effectively_equal(zoo, template) == []


def _dataset(tmp_path: Path) -> Path:
    records = tmp_path / "tfrecords"
    records.mkdir()
    for split, shards in (("train", 2), ("val", 1)):
        for shard in range(shards):
            (records / f"{split}-{shard:05d}-of-{shards:05d}.tfrecord").write_bytes(b"")
    from_class_names(["cat", "dog", "bird"]).write(records / "label_map.pbtxt")
    return records


def _new_pipeline(records: Path, out: Path, *extra: str) -> int:
    return cli.main([
        "new-pipeline", "--model", "ssd_mobilenet_v2_fpnlite_320x320", "--label-map", str(records / "label_map.pbtxt"),
        "--train", str(records / "train-*"), "--val", str(records / "val-*.tfrecord"), "--out", str(out), *extra,
    ])


def test_new_pipeline_fills_the_template_and_reloads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = _dataset(tmp_path)
    out = tmp_path / "pipelines" / "my.config"
    assert _new_pipeline(records, out, "--batch-size", "16", "--num-steps", "1000") == 0
    config = load_pipeline(out)
    assert config.model.ssd.num_classes == 3
    assert list(config.train_input_reader.tf_record_input_reader.input_path) == [str(records / "train-*")]
    assert list(config.eval_input_reader[0].tf_record_input_reader.input_path) == [str(records / "val-*.tfrecord")]
    assert config.eval_input_reader[0].label_map_path == str(records / "label_map.pbtxt")
    assert config.train_config.batch_size == 16
    cosine = cosine_schedule(config)
    assert cosine.learning_rate_base == pytest.approx(0.08)  # 0.04 at batch 8, scaled linearly
    assert cosine.warmup_learning_rate == pytest.approx(0.08 / 3, rel=1e-3)
    assert (cosine.total_steps, cosine.warmup_steps, config.train_config.num_steps) == (1000, 50, 1000)
    assert not config.train_config.fine_tune_checkpoint
    # Everything else is the template's.
    template = parse_pipeline_text(template_text("ssd_mobilenet_v2_fpnlite_320x320"), "template")
    template.model.ssd.num_classes = 3
    assert _effectively_equal(template.model, config.model) == []
    assert "3 classes, batch 16" in capsys.readouterr().out


def test_new_pipeline_set_overrides_any_field_last(tmp_path: Path) -> None:
    records = _dataset(tmp_path)
    out = tmp_path / "my.config"
    anchors = "model.ssd.anchor_generator.multiscale_anchor_generator"
    assert _new_pipeline(records, out, "--num-steps", "1000", "--set", f"{anchors}.anchor_scale=2.0",
                         "--set", f"{anchors}.aspect_ratios=[1.0, 0.25, 0.5]", "--set", "train_config.num_steps=400") == 0
    config = load_pipeline(out)
    generator = config.model.ssd.anchor_generator.multiscale_anchor_generator
    assert generator.anchor_scale == 2.0 and list(generator.aspect_ratios) == [1.0, 0.25, 0.5]
    assert config.train_config.num_steps == 400  # after --num-steps
    assert _new_pipeline(records, tmp_path / "bad.config", "--set", f"{anchors}.anchor_size=2.0") == 1
    assert not (tmp_path / "bad.config").exists()


def test_new_pipeline_explicit_learning_rate_and_checkpoint(tmp_path: Path) -> None:
    records = _dataset(tmp_path)
    checkpoint = tmp_path / "backbone.weights.h5"
    checkpoint.write_bytes(b"")
    out = tmp_path / "my.config"
    assert _new_pipeline(records, out, "--learning-rate", "0.01", "--fine-tune-checkpoint", str(checkpoint)) == 0
    config = load_pipeline(out)
    assert cosine_schedule(config).learning_rate_base == pytest.approx(0.01)
    assert config.train_config.fine_tune_checkpoint == str(checkpoint)
    assert config.train_config.fine_tune_checkpoint_type == "classification"
    assert _new_pipeline(records, out) == 1  # refuses to overwrite without --force


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("--train", "nowhere/train-*"), r"--train nowhere/train-\*: no files match this pattern"),
        (("--val", "val-missing.tfrecord"), r"--val val-missing.tfrecord: no files match"),
        (("--label-map", "missing.pbtxt"), r"--label-map missing.pbtxt: no such file"),
        (("--fine-tune-checkpoint", "ckpt/ckpt-7"),
         r"--fine-tune-checkpoint ckpt/ckpt-7: no checkpoint here \(expected ckpt/ckpt-7\.index\)"),
        (("--batch-size", "0"), r"--batch-size 0: must be at least 1"),
    ],
)
def test_new_pipeline_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: tuple[str, str], expected: str
) -> None:
    records = _dataset(tmp_path)
    args = ["--model", "ssd_mobilenet_v2_320x320", "--label-map", str(records / "label_map.pbtxt"),
            "--train", str(records / "train-*"), "--val", str(records / "val-*"), "--out", str(tmp_path / "p.config")]
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    assert cli.main(["new-pipeline", *args]) == 1
    assert not (tmp_path / "p.config").exists()
    assert re.search(expected, capsys.readouterr().err)


def test_inspect_pipeline_reports_paths(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = _dataset(tmp_path)
    out = tmp_path / "my.config"
    assert _new_pipeline(records, out) == 0
    (records / "val-00000-of-00001.tfrecord").unlink()
    capsys.readouterr()
    assert cli.main(["inspect-pipeline", str(out), "--no-model", "--set", "train_config.batch_size=4"]) == 0
    report = capsys.readouterr().out
    assert "SSD MobileNetV2 FPNLite" in report and "input 320x320, 3 classes" in report
    assert "batch size 4" in report
    assert "train-*  [2 file(s)]" in report
    assert "val-*.tfrecord  [MISSING]" in report
    assert "label_map.pbtxt  [exists]" in report


def test_inspect_pipeline_rejects_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["inspect-pipeline", str(REPO / "pipelines" / "ssd_mobilenet_v2_320x320.config"), "--no-model",
                     "--set", "model.ssd.feature_extractor.type=ssd_resnet50_v1_fpn_keras"]) == 1
    assert "model.ssd.feature_extractor.type" in capsys.readouterr().err


def test_inspect_pipeline_sizes_the_model_like_the_od_api(capsys: pytest.CaptureFixture) -> None:
    folder = _reference("od_api_tf2", "ssd_mobilenet_v2_320x320_coco17_tpu-8")
    contents = json.loads((folder / "contents.json").read_text())
    assert cli.main(["inspect-pipeline", str(folder / "pipeline.config")]) == 0
    report = capsys.readouterr().out
    height, width = contents["input_size"]
    assert f"input {height}x{width}, 2 classes" in report
    assert f"anchors: {contents['num_anchors']} in total" in report
    for index in range(6):
        _, rows, cols, depth = contents["arrays"][f"feature_map_{index}"]
        assert f"feature map {index}: {rows}x{cols}x{depth}," in report
