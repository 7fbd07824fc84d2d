"""pipeline.config loading: the OD API's own configs load unchanged; bad input gives errors naming line / field."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from tfodkit.config.loader import load_pipeline, parse_pipeline_text, pipeline_text
from tfodkit.config.registry import FIELDS, REQUIRED_ONEOFS, Support
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_hyperparams_pb2, pipeline_train_pb2

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
ZOO_CONFIGS = [
    "ssd_mobilenet_v2_320x320_coco17_tpu-8",
    "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8",
    "ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8",
    "ssdlite_mobilenet_v2_coco",
]
TF2_EXPORTS = ["ssd_mobilenet_v2_320x320_coco17_tpu-8", "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"]


def _reference(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it ships beside the repo in CI)")
    return path


def _zoo(name: str) -> Path:
    return _reference("od_api_configs", f"{name}.config")


def _write_with(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    path = tmp_path / "pipeline.config"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name", ZOO_CONFIGS)
def test_zoo_configs_load_unchanged(name: str) -> None:
    path = _zoo(name)
    config = load_pipeline(path)
    assert config.model.ssd.num_classes == 90
    assert config.eval_config.metrics_set == ["coco_detection_metrics"] or name.startswith("ssdlite")
    # What was parsed is what is written back: nothing dropped.
    assert parse_pipeline_text(pipeline_text(config), "round trip") == config


@pytest.mark.parametrize("name", TF2_EXPORTS)
def test_od_api_exported_pipeline_configs_load(name: str) -> None:
    config = load_pipeline(_reference("od_api_tf2", name, "pipeline.config"))
    assert config.model.ssd.num_classes == 2
    assert config.train_config.batch_size == 8


def test_zoo_values_and_od_api_defaults() -> None:
    ssd_config = load_pipeline(_zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"))
    ssd = ssd_config.model.ssd
    assert ssd.feature_extractor.type == "ssd_mobilenet_v2_keras"
    assert (ssd.image_resizer.fixed_shape_resizer.height, ssd.image_resizer.fixed_shape_resizer.width) == (300, 300)
    assert list(ssd.anchor_generator.ssd_anchor_generator.aspect_ratios) == pytest.approx([1, 2, 0.5, 3, 0.3333])
    assert ssd_config.train_config.fine_tune_checkpoint_version == pipeline_train_pb2.V2
    # OD API defaults for fields the file leaves out.
    assert ssd.anchor_generator.ssd_anchor_generator.reduce_boxes_in_lowest_layer is True
    assert ssd.anchor_generator.ssd_anchor_generator.interpolated_scale_aspect_ratio == 1.0
    assert ssd.add_background_class is True
    assert ssd.feature_extractor.pad_to_multiple == 1
    lite = load_pipeline(_zoo("ssdlite_mobilenet_v2_coco")).model.ssd
    assert lite.feature_extractor.type == "ssd_mobilenet_v2"
    assert lite.encode_background_as_zeros is False
    assert lite.loss.hard_example_miner.num_hard_examples == 3000
    fpn = load_pipeline(_zoo("ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8")).model.ssd
    assert fpn.feature_extractor.fpn.additional_layer_depth == 128
    assert fpn.box_predictor.weight_shared_convolutional_box_predictor.kernel_size == 3
    assert fpn.loss.classification_loss.weighted_sigmoid_focal.HasField("alpha")


def test_unknown_field_names_file_line_column_and_field(tmp_path: Path) -> None:
    path = _write_with(tmp_path, _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"), "    num_classes: 90\n",
                       "    num_classes: 90\n    num_clases: 3\n")
    line = _line_of(path, "num_clases")
    with pytest.raises(TfodkitError) as error:
        load_pipeline(path)
    message = str(error.value)
    assert f"{path}:{line}:5" in message
    assert '"num_clases"' in message and "Ssd" in message


def test_malformed_value_names_line_and_field(tmp_path: Path) -> None:
    path = _write_with(tmp_path, _zoo("ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"), "batch_size: 128",
                       "batch_size: many")
    line = _line_of(path, "batch_size: many")
    with pytest.raises(TfodkitError, match=rf"^{path}:{line}:\d+: .*batch_size.*many"):
        load_pipeline(path)


def test_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.config"
    path.write_text("model {\n  ssd {\n    num_classes: 3\n")
    with pytest.raises(TfodkitError, match=rf"^{path}:3:\d+: "):
        load_pipeline(path)


def test_missing_file() -> None:
    with pytest.raises(TfodkitError, match="no/such.config: pipeline config not found"):
        load_pipeline("no/such.config")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: 'ssd_mobilenet_v2_keras'", "type: 'ssd_resnet50_v1_fpn_keras'",
         r'model\.ssd\.feature_extractor\.type: "ssd_resnet50_v1_fpn_keras" is not supported'),
        ("encode_background_as_zeros: true", "add_background_class: false",
         r"model\.ssd\.add_background_class: false is not supported by tfodkit \(supported: true\)"),
        ("    ssd_random_crop {\n    }", "    random_black_patches {\n    }",
         r"train_config\.data_augmentation_options\[1\]\.random_black_patches: not implemented"),
        ("fixed_shape_resizer {\n        height: 300\n        width: 300\n      }",
         "keep_aspect_ratio_resizer {\n        min_dimension: 300\n      }",
         r"model\.ssd\.image_resizer\.keep_aspect_ratio_resizer: not implemented .*fixed_shape_resizer"),
        ("apply_sigmoid_to_scores: false", "apply_sigmoid_to_scores: true",
         r"convolutional_box_predictor\.apply_sigmoid_to_scores: true is not supported .*supported: false"),
        ("num_steps: 50000", "num_steps: 50000\n  use_bfloat16: true", r"train_config\.use_bfloat16: true"),
        ("encode_background_as_zeros: true", "encode_background_as_zeros: true\n    implicit_example_weight: 0.5",
         r"model\.ssd\.implicit_example_weight: not implemented by tfodkit; only its default 1\.0 is supported"),
        ("        initializer {\n          truncated_normal_initializer {\n"
         "            stddev: 0.03\n            mean: 0.0\n          }\n        }\n", "",
         r"model\.ssd\.feature_extractor\.conv_hyperparams\.initializer: required"),
    ],
)
def test_unsupported_values_name_the_field_path(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _write_with(tmp_path, _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"), old, new)
    with pytest.raises(TfodkitError, match=expected):
        load_pipeline(path)


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    path = _write_with(tmp_path, _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"), "apply_sigmoid_to_scores: false",
                       "apply_sigmoid_to_scores: true")
    with pytest.raises(TfodkitError) as error:
        load_pipeline(path, ["train_config.use_bfloat16=true", "model.ssd.num_classes=0"])
    message = str(error.value)
    assert "3 unsupported or invalid setting(s)" in message
    for field in ("apply_sigmoid_to_scores", "use_bfloat16", "model.ssd.num_classes: 0 is below the minimum 1"):
        assert field in message


def test_no_effect_default_and_explicit_default_values_are_accepted(tmp_path: Path) -> None:
    path = _write_with(tmp_path, _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"), "encode_background_as_zeros: true",
                       "encode_background_as_zeros: true\n    implicit_example_weight: 1.0")
    config = load_pipeline(path)
    assert config.train_config.sync_replicas is True  # accepted, documented as having no effect
    assert FIELDS["TrainConfig.sync_replicas"].support is Support.NO_EFFECT


def test_missing_required_parts(tmp_path: Path) -> None:
    path = tmp_path / "p.config"
    path.write_text("model { ssd { num_classes: 2 image_resizer { } } }\ntrain_config { batch_size: 4 }\n")
    with pytest.raises(TfodkitError) as error:
        load_pipeline(path)
    message = str(error.value)
    assert "model.ssd.image_resizer: one of {fixed_shape_resizer} is required" in message
    assert "model.ssd.feature_extractor: required" in message
    assert "train_config.num_steps: 0 is below the minimum 1" in message


def test_cross_field_rules(tmp_path: Path) -> None:
    fpn = _zoo("ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8")
    levels = r"multiscale_anchor_generator: levels 3\.\.6 differ from .*fpn levels 3\.\.7"
    with pytest.raises(TfodkitError, match=levels):
        load_pipeline(fpn, ["model.ssd.anchor_generator.multiscale_anchor_generator.max_level=6"])
    with pytest.raises(TfodkitError, match=r"feature_extractor\.fpn: only allowed with type"):
        load_pipeline(fpn, ["model.ssd.feature_extractor.type=ssd_mobilenet_v2_keras"])
    with pytest.raises(TfodkitError, match=r"warmup_steps: 1000 exceeds total_steps 500"):
        load_pipeline(fpn, [
            "train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate.total_steps=500"
        ])
    ssd = _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8")
    with pytest.raises(TfodkitError, match=r"ssd_anchor_generator\.num_layers: 5, but .* produces 6 feature maps"):
        load_pipeline(ssd, ["model.ssd.anchor_generator.ssd_anchor_generator.num_layers=5"])
    (tmp_path / "model.ckpt.index").write_text("")
    with pytest.raises(TfodkitError, match=r"fine_tune_checkpoint_version: .*not TF1 name-based \(V1\)"):
        load_pipeline(ssd, [f"train_config.fine_tune_checkpoint={tmp_path / 'model.ckpt'}",
                            "train_config.fine_tune_checkpoint_version=V1"])
    with pytest.raises(TfodkitError, match=r"eval_input_reader: 2 readers given"):
        load_pipeline(ssd, ["eval_input_reader[1]={ tf_record_input_reader { input_path: 'x' } }"])


def test_overrides_set_scalars_enums_oneofs_and_repeated_fields() -> None:
    path = _zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8")
    config = load_pipeline(path, [
        "train_config.batch_size=16",
        "model.ssd.num_classes=3",
        "model.ssd.image_resizer.fixed_shape_resizer.height=320",
        "model.ssd.feature_extractor.conv_hyperparams.activation=RELU",
        "train_config.fine_tune_checkpoint=ckpt/with spaces/ckpt-0",
        "train_input_reader.tf_record_input_reader.input_path=[data/a-*.tfrecord, data/b.tfrecord]",
        "eval_input_reader[0].label_map_path=data/label_map.pbtxt",
        "model.ssd.anchor_generator.ssd_anchor_generator.aspect_ratios[4]=0.25",
        "train_config.optimizer={ adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.001 } } "
        "} }",
        "train_config.data_augmentation_options[2]={ random_adjust_brightness { max_delta: 0.1 } }",
    ])
    assert config.train_config.batch_size == 16
    assert config.model.ssd.num_classes == 3
    assert config.model.ssd.image_resizer.fixed_shape_resizer.height == 320
    assert config.model.ssd.feature_extractor.conv_hyperparams.activation == pipeline_hyperparams_pb2.Hyperparams.RELU
    assert config.train_config.fine_tune_checkpoint == "ckpt/with spaces/ckpt-0"
    assert list(config.train_input_reader.tf_record_input_reader.input_path) == ["data/a-*.tfrecord", "data/b.tfrecord"]
    assert config.eval_input_reader[0].label_map_path == "data/label_map.pbtxt"
    assert config.model.ssd.anchor_generator.ssd_anchor_generator.aspect_ratios[4] == pytest.approx(0.25)
    assert config.train_config.optimizer.WhichOneof("optimizer") == "adam_optimizer"
    assert not config.train_config.optimizer.HasField("momentum_optimizer")
    # The optimizer message was replaced, so its other fields are back to their defaults.
    assert config.train_config.optimizer.use_moving_average is True
    assert len(config.train_config.data_augmentation_options) == 3
    # Switching a oneof member by path clears the previous member, as in the file.
    switched = load_pipeline(path, ["model.ssd.feature_extractor.conv_hyperparams.initializer."
                                    "random_normal_initializer.stddev=0.02"])
    initializer = switched.model.ssd.feature_extractor.conv_hyperparams.initializer
    assert initializer.WhichOneof("initializer_oneof") == "random_normal_initializer"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.ssd.num_clases=3", r"--set model\.ssd\.num_clases=3: message Ssd has no field 'num_clases'"),
        ("train_config.batch_size=lots", r"--set train_config\.batch_size=lots: .*Couldn't parse integer"),
        ("train_config.batch_size", r"expected path\.to\.field=value"),
        ("model.ssd.num_classes.x=1", r"model\.ssd\.num_classes is an integer, not a message"),
        ("eval_input_reader.shuffle=false", r"eval_input_reader is repeated; pick an element"),
        ("eval_input_reader[4].shuffle=false", r"eval_input_reader has 1 elements; index 4 is out of range"),
        ("model.ssd.post_processing.score_converter=SIGMOIDAL", r"has no value named SIGMOIDAL"),
        ("train_config.optimizer=adam", r"train_config\.optimizer is a message; give its fields as \{ \.\.\. \}"),
    ],
)
def test_bad_overrides_name_the_override_and_path(override: str, expected: str) -> None:
    with pytest.raises(TfodkitError, match=expected):
        load_pipeline(_zoo("ssd_mobilenet_v2_320x320_coco17_tpu-8"), [override])


def test_registry_names_real_fields() -> None:
    pool = descriptor_pool.Default()
    for key in list(FIELDS) + list(REQUIRED_ONEOFS):
        message_name, _, member = key.rpartition(".")
        descriptor = pool.FindMessageTypeByName(f"tfodkit.protos.{message_name}")
        assert member in descriptor.fields_by_name or member in descriptor.oneofs_by_name, key
    for key, rule in FIELDS.items():
        assert rule.support is Support.IMPLEMENTED or rule.note, f"{key}: no-effect fields need a reason"


def test_docs_table_lists_every_registry_field() -> None:
    docs = (REPO / "docs" / "config.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in docs.splitlines() if line.startswith("| `")}
    for key, rule in FIELDS.items():
        assert key in rows, f"docs/config.md lacks {key}"
        assert rule.support.value in rows[key], f"docs/config.md gives {key} the wrong status"
