"""HParams: --hparam parsing, a run's values from its config, both event files as TensorBoard's plugin reads them."""

from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import struct_pb2
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from tfodkit.config.loader import parse_pipeline_text
from tfodkit.config.overrides import apply_overrides
from tfodkit.config.templates import template_text
from tfodkit.errors import TfodkitError
from tfodkit.training.hparams import METRICS, parse_hparam, run_hparams, write_experiment_config, write_run_hparams


def hparams_plugin_data(directory: Path) -> list[HParamsPluginData]:
    """The hparams plugin's data in the event files directly in `directory` (not its subdirectories), read as
    TensorBoard reads it: each summary whose metadata names the "hparams" plugin, its content parsed."""
    found = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    found.append(HParamsPluginData.FromString(value.metadata.plugin_data.content))
    return found


def tensorboard_experiment(logdir: Path) -> api_pb2.Experiment:
    """The experiment TensorBoard's HParams dashboard shows for `tensorboard --logdir LOGDIR`, computed by the
    plugin's own backend over the event files."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                                            data_provider=provider))
    request = context.RequestContext()
    return backend.experiment_from_metadata(request, "", True, backend.hparams_metadata(request, ""),
                                            backend.hparams_from_data_provider(request, "", None))


def python_value(value: struct_pb2.Value) -> object:
    """A google.protobuf Value (how the plugin stores an hparam value) as a Python bool, float or str."""
    kind = value.WhichOneof("kind")
    return {"bool_value": value.bool_value, "number_value": value.number_value,
            "string_value": value.string_value}[kind]


@pytest.mark.parametrize("text, expected", [
    ("batch=8", ("batch", 8)),
    ("lr=0.04", ("lr", 0.04)),
    (" decay = 1e-3 ", ("decay", 0.001)),
    ("augment=true", ("augment", True)),
    ("augment=False", ("augment", False)),
    ("optimizer=adam", ("optimizer", "adam")),
    ("ratio=2:1", ("ratio", "2:1")),
])
def test_parse_hparam_reads_int_float_bool_or_string(text: str, expected: tuple[str, object]):
    name, value = parse_hparam(text)
    assert (name, value) == expected and type(value) is type(expected[1])


@pytest.mark.parametrize("text", ["batch", "=8", "batch=", " = "])
def test_parse_hparam_refuses_text_without_a_name_and_a_value(text: str):
    with pytest.raises(TfodkitError, match=r"--hparam .*expected NAME=VALUE"):
        parse_hparam(text)


def _config(template: str, overrides: tuple[str, ...] = ()):
    config = parse_pipeline_text(template_text(template), template)
    apply_overrides(config, overrides)
    return config


def test_run_hparams_come_from_the_config_then_the_extras():
    config = _config("ssd_mobilenet_v2_fpnlite_320x320", (
        "model.ssd.loss.classification_weight=0.5", "model.ssd.loss.localization_weight=2",
        "train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate.learning_rate_base=0.026",
        "train_config.batch_size=5", "train_config.num_steps=1234",
        "model.ssd.image_resizer.fixed_shape_resizer.height=256"))
    values = run_hparams(config, 7, {"sweep": "a", "batch_size": 10})
    assert values == {
        "model": config.model.ssd.feature_extractor.type, "image_size": "256x320", "batch_size": 10,
        "learning_rate_base": 0.026, "classification_weight": 0.5, "localization_weight": 2.0,
        "num_steps": 1234, "seed": 7, "sweep": "a"}  # 0.026, not its float32 0.025999999...
    assert "fpn" in values["model"]
    assert "seed" not in run_hparams(config, None, {})

    manual = _config("ssd_mobilenet_v2_320x320", (
        "train_config.optimizer.momentum_optimizer.learning_rate={ manual_step_learning_rate { "
        "initial_learning_rate: 0.003 schedule { step: 10 learning_rate: 0.0003 } } }",))
    assert run_hparams(manual, None, {})["learning_rate_base"] == 0.003
    constant = _config("ssd_mobilenet_v2_320x320", (
        "train_config.optimizer.momentum_optimizer.learning_rate={ constant_learning_rate { learning_rate: 0.01 } }",))
    assert run_hparams(constant, None, {})["learning_rate_base"] == 0.01


def test_run_hparams_in_the_run_directory_replace_the_previous_ones(tmp_path: Path):
    write_run_hparams(tmp_path, {"batch_size": 5, "model": "ssd"}, trial_id="first")
    write_run_hparams(tmp_path, {"batch_size": 10, "model": "ssd", "augment": True}, trial_id="run-b")
    (data,) = hparams_plugin_data(tmp_path)
    start = data.session_start_info
    assert start.group_name == "run-b"
    assert {name: python_value(value) for name, value in start.hparams.items()} == {
        "batch_size": 10.0, "model": "ssd", "augment": True}


def test_experiment_config_at_the_root_has_every_hparam_its_values_and_the_metrics_by_group(tmp_path: Path):
    runs = [
        {"model": "ssd_mobilenet_v2_keras", "learning_rate_base": 0.04, "batch_size": 5, "augment": True},
        {"model": "ssd_mobilenet_v2_fpn_keras", "learning_rate_base": 0.026, "batch_size": 10, "augment": False},
        {"model": "ssd_mobilenet_v2_keras", "learning_rate_base": 1, "batch_size": 5, "note": "x"},
        {"model": "ssd_mobilenet_v2_keras", "mixed": 1, "note": "y"},
        {"model": "ssd_mobilenet_v2_keras", "mixed": "one"},
    ]
    write_experiment_config(tmp_path, runs[:1])
    write_experiment_config(tmp_path, runs)  # written again (a sweep restarted): replaces the first one
    (data,) = hparams_plugin_data(tmp_path)
    experiment = data.experiment
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(infos) == {"model", "learning_rate_base", "batch_size", "augment", "note", "mixed"}

    def domain(name: str) -> list[object]:
        return [python_value(value) for value in infos[name].domain_discrete.values]

    assert domain("model") == ["ssd_mobilenet_v2_fpn_keras", "ssd_mobilenet_v2_keras"]
    assert infos["model"].type == api_pb2.DATA_TYPE_STRING
    assert domain("learning_rate_base") == [0.026, 0.04, 1.0]  # an int among floats counts as a float
    assert infos["learning_rate_base"].type == api_pb2.DATA_TYPE_FLOAT64
    assert domain("batch_size") == [5.0, 10.0] and infos["batch_size"].type == api_pb2.DATA_TYPE_FLOAT64
    assert domain("augment") == [False, True] and infos["augment"].type == api_pb2.DATA_TYPE_BOOL
    assert domain("note") == ["x", "y"]
    assert not infos["mixed"].HasField("domain_discrete")  # an int and a string: no domain
    metrics = [(info.name.tag, info.name.group) for info in experiment.metric_infos]
    assert metrics == list(METRICS)
    assert ("DetectionBoxes_Precision/mAP@.50IOU", "eval") in metrics and ("Loss/total_loss", "train") in metrics


def test_tensorboard_shows_a_sweep_root_with_its_runs_as_one_experiment(tmp_path: Path):
    runs = {"a": {"classification_weight": 0.5, "model": "ssd"}, "b": {"classification_weight": 1.0, "model": "ssd"}}
    for name, values in runs.items():
        write_run_hparams(tmp_path / name, values, trial_id=name)
        writer = tf.summary.create_file_writer(str(tmp_path / name / "eval"))
        with writer.as_default():
            tf.summary.scalar("DetectionBoxes_Precision/mAP@.50IOU", 0.5, step=10)
        writer.close()
    write_experiment_config(tmp_path, list(runs.values()))
    experiment = tensorboard_experiment(tmp_path)
    infos = {info.name: [python_value(value) for value in info.domain_discrete.values]
             for info in experiment.hparam_infos}
    assert infos == {"classification_weight": [0.5, 1.0], "model": ["ssd"]}
    assert [(info.name.tag, info.name.group) for info in experiment.metric_infos] == list(METRICS)
