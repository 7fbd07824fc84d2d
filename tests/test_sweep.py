"""`tfodkit sweep`: the sweep file's checks, run expansion and names, dry run, printed commands, a real tiny 2x2
sweep with failing runs and its restart, and clean stops on a signal."""

import contextlib
import io
import json
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from test_hparams import hparams_plugin_data, python_value, tensorboard_experiment
from test_trainer import TINY

from tfodkit import cli
from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError
from tfodkit.experiments.runner import LOG_FILE, Job, run_jobs
from tfodkit.experiments.settings import scale_learning_rate
from tfodkit.experiments.sweep import SWEEP_JSON, plan_sweep
from tfodkit.experiments.sweep_file import load_sweep_file
from tfodkit.experiments.train_flags import train_parser
from tfodkit.training import run_summary

SSD, FPNLITE = "ssd_mobilenet_v2_320x320", "ssd_mobilenet_v2_fpnlite_320x320"
COSINE = "train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate"
NUM_STEPS = 4


def _tiny_set(num_steps: int = NUM_STEPS) -> str:
    """The `set:` block of a tiny model (tests/test_trainer.py's TINY) training `num_steps` steps."""
    lines = [f"  {path}: {value}" for path, value in (override.split("=", 1) for override in TINY)]
    return "set:\n" + "\n".join(lines) + f"\n  num_steps: {num_steps}\n"


def _sweep_file(directory: Path, pipeline: Path, body: str, name: str = "s.yaml") -> Path:
    path = directory / name
    path.write_text(f"base:\n  pipeline: {pipeline}\n" + body, encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["sweep", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("body, where", [
    ("set:\n  model.ssd.loss.clasification_weight: 0.5\n", "set"),
    ("grid:\n  model.ssd.loss.clasification_weight: [0.5, 1.0]\n", "grid"),
    ("runs:\n  - name: a\n  - name: b\n    model.ssd.loss.clasification_weight: 0.5\n", r"runs\[1\]"),
])
def test_an_unknown_field_path_is_named_with_the_sweep_file_before_anything_is_written(
        tmp_path: Path, pipeline: Path, capsys: pytest.CaptureFixture, body: str, where: str):
    path = _sweep_file(tmp_path, pipeline, body)
    code, _, err = _cli(capsys, path, "--runs-dir", tmp_path / "runs")
    assert code == 1
    assert f"{path}: " in err and "has no field 'clasification_weight'" in err
    assert re.search(f"{where}: model.ssd.loss.clasification_weight: --set ", err)
    assert not (tmp_path / "runs").exists()


def test_bad_yaml_is_reported_with_its_line(tmp_path: Path, pipeline: Path):
    path = _sweep_file(tmp_path, pipeline, "grid:\n  seed: [0, 1\n  model: [a]\n")
    with pytest.raises(TfodkitError, match=rf"^{path}:5:\d+: not valid YAML"):
        load_sweep_file(path)


def test_batch_sizes_that_differ_need_an_explicit_scale_lr_and_linear_scales_every_rate(
        tmp_path: Path, pipeline: Path):
    grid = "grid:\n  batch_size: [2, 4]\n"
    with pytest.raises(TfodkitError, match=r"different batch sizes \(2, 4\); choose `scale_lr: linear`"):
        plan_sweep(load_sweep_file(_sweep_file(tmp_path, pipeline, _tiny_set() + grid)), tmp_path)

    runs = {}
    for choice in ("linear", "none"):
        file = _sweep_file(tmp_path, pipeline, _tiny_set() + grid + f"scale_lr: {choice}\n")
        runs[choice] = {run.config.train_config.batch_size: run for run in plan_sweep(load_sweep_file(file),
                                                                                          tmp_path).runs}
    base = load_pipeline(pipeline).train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    for choice, factor in (("linear", 2.0), ("none", 1.0)):
        small, large = runs[choice][2], runs[choice][4]
        for run, scale in ((small, 1.0), (large, factor)):
            cosine = run.config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
            assert cosine.learning_rate_base == pytest.approx(base.learning_rate_base * scale)
            assert cosine.warmup_learning_rate == pytest.approx(base.warmup_learning_rate * scale)
            assert run.learning_rate_scale == scale
            assert run.hparams["learning_rate_base"] == pytest.approx(base.learning_rate_base * scale)
    assert f"{COSINE}.learning_rate_base=0.08" in runs["linear"][4].overrides
    # A manual-step schedule: its initial rate and every step's rate scale.
    config = load_pipeline(pipeline, [
        "train_config.optimizer.momentum_optimizer.learning_rate={ manual_step_learning_rate { "
        "initial_learning_rate: 0.01 schedule { step: 10 learning_rate: 0.002 } } }"])
    scale_learning_rate(config, 3.0)
    manual = config.train_config.optimizer.momentum_optimizer.learning_rate.manual_step_learning_rate
    assert (manual.initial_learning_rate, manual.schedule[0].learning_rate) == pytest.approx((0.03, 0.006))


@pytest.mark.parametrize("train, message", [
    ("checkpoint_every: 5", r"train: checkpoint_every: `tfodkit train` has no such flag \(flags you can give here: "
                            r".*checkpoint_every_n"),
    ("seed: 3", r"train: seed: not here: use `seed:` under set, grid or runs"),
    ("eval_every_n: often", r"train: eval_every_n: 'often' is not a valid int"),
    ("skip_bad_records: 1", r"train: skip_bad_records: 1: give true or false"),
])
def test_train_flags_are_checked_against_the_train_command(tmp_path: Path, pipeline: Path, train: str, message: str):
    path = _sweep_file(tmp_path, pipeline, f"train:\n  {train}\n")
    with pytest.raises(TfodkitError, match=rf"^{path}: {message}"):
        plan_sweep(load_sweep_file(path), tmp_path)


def test_named_runs_cross_the_grid_with_readable_stable_names_and_the_model_axis_keeps_the_dataset(
        tmp_path: Path, pipeline: Path):
    body = _tiny_set() + (
        "runs:\n  - name: small\n    batch_size: 2\n  - learning_rate: 0.01\n"
        f"grid:\n  model: [{SSD}, {FPNLITE}]\n  seed: [0, 1]\n  model.ssd.loss.localization_weight: [2.0]\n")
    file = load_sweep_file(_sweep_file(tmp_path, pipeline, body, name="my sweep.yaml"))
    assert file.name == "my_sweep"
    sweep = plan_sweep(file, tmp_path / "runs")
    names = [run.name for run in sweep.runs]
    assert names == [f"{first}-{model}-seed_{seed}" for first in ("small", "learning_rate_0.01")
                     for model in (SSD, FPNLITE) for seed in (0, 1)]
    assert names == [run.name for run in plan_sweep(load_sweep_file(file.path), tmp_path / "runs").runs]
    assert all(run.directory == tmp_path / "runs" / "my_sweep" / run.name for run in sweep.runs)
    base = load_pipeline(pipeline)
    for run in sweep.runs:
        assert run.config.model.ssd.feature_extractor.type == {
            SSD: "ssd_mobilenet_v2_keras", FPNLITE: "ssd_mobilenet_v2_fpn_keras"}[run.model]
        assert run.config.model.ssd.feature_extractor.depth_multiplier == pytest.approx(0.35)  # `set:` applies
        assert run.config.model.ssd.loss.localization_weight == 2.0
        assert run.config.train_input_reader.label_map_path == base.train_input_reader.label_map_path
        assert (list(run.config.eval_input_reader[0].tf_record_input_reader.input_path)
                == list(base.eval_input_reader[0].tf_record_input_reader.input_path))
        assert run.hparams["model"] == run.model and run.hparams["seed"] == run.seed
        assert ["--seed", str(run.seed)] == list(run.command[run.command.index("--seed"):][:2])
    unnamed = sweep.runs[-1]
    cosine = unnamed.config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert cosine.learning_rate_base == pytest.approx(0.01)
    assert cosine.warmup_learning_rate == pytest.approx(0.01 / 3, rel=1e-3)  # the templates' warmup ratio kept
    assert unnamed.hparams["learning_rate"] == 0.01 and "--hparam" in unnamed.command

    clash = _sweep_file(tmp_path, pipeline, "runs:\n  - name: a\n  - name: a\n")
    with pytest.raises(TfodkitError, match=rf"^{clash}: several runs would be named a;"):
        load_sweep_file(clash)


def test_dry_run_prints_the_runs_and_writes_nothing(tmp_path: Path, pipeline: Path, capsys: pytest.CaptureFixture):
    records = pipeline.parent / "records"
    path = tmp_path / "s.yaml"
    path.write_text(
        f"base:\n  template: {SSD}\n  label_map: {records / 'label_map.pbtxt'}\n"
        f"  train: '{records}/train-*.tfrecord'\n  val: '{records}/val-*.tfrecord'\n  batch_size: 4\n"
        "grid:\n  model.ssd.loss.classification_weight: [0.5, 1]\n", encoding="utf-8")
    code, out, _ = _cli(capsys, path, "--runs-dir", tmp_path / "runs", "--dry-run")
    assert code == 0
    for value in ("0.5", "1"):
        assert f"\nclassification_weight_{value}\n  model: {SSD}\n" in out
        assert f"  --set model.ssd.loss.classification_weight={value}\n" in out
    # new-pipeline's rule: the template's 0.04 for batch 8, scaled to batch 4.
    assert "hparams: model=ssd_mobilenet_v2_keras, image_size=320x320, batch_size=4" in out
    assert "learning_rate_base=0.02" in out
    assert not (tmp_path / "runs").exists()


def test_the_example_sweep_file_is_the_demo_grid():
    file = load_sweep_file(Path(__file__).resolve().parents[1] / "sweeps" / "loss_weights.yaml")
    assert (file.name, file.template.model, file.template.num_steps) == ("loss_weights", SSD, 400)
    assert len(file.runs) == 8 and len({run.name for run in file.runs}) == 8
    assert file.runs[-1].name == f"{FPNLITE}-classification_weight_1.0-localization_weight_1.0"
    assert file.train == {"checkpoint_every_n": 100, "eval_every_n": 100}


def test_printed_commands_parse_back_with_the_train_parser_and_their_configs_are_rendered(
        tmp_path: Path, pipeline: Path, capsys: pytest.CaptureFixture):
    body = _tiny_set() + ("grid:\n  seed: [3, 4]\n"
                          "  train_config.optimizer.momentum_optimizer.momentum_optimizer_value: [0.8, 0.9]\n"
                          "train:\n  checkpoint_every_n: 2\n  early-stop-patience: 3\n")
    path = _sweep_file(tmp_path, pipeline, body)
    code, out, _ = _cli(capsys, path, "--runs-dir", tmp_path / "runs", "--print-commands")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    record = json.loads((tmp_path / "runs" / "s" / SWEEP_JSON).read_text())
    for line, run in zip(lines, record["runs"]):
        argv = shlex.split(line)
        assert argv[:2] == ["tfodkit", "train"] and argv == run["command"]
        args = train_parser().parse_args(argv[2:])
        assert Path(args.model_dir) == tmp_path / "runs" / "s" / run["name"]
        assert (args.seed, args.checkpoint_every_n, args.early_stop_patience) == (run["seed"], 2, 3)
        momentum = run["hparams"]["momentum_optimizer_value"]
        assert args.no_progress and args.hparams == [f"momentum_optimizer_value={momentum}"]
        config = load_pipeline(args.pipeline_config_path)
        assert config.train_config.optimizer.momentum_optimizer.momentum_optimizer_value == pytest.approx(momentum)
        assert not (Path(args.model_dir) / "train").exists()  # nothing trained
    assert [run["name"] for run in record["runs"]] == [
        f"seed_{seed}-momentum_optimizer_value_{value}" for seed in (3, 4) for value in (0.8, 0.9)]


@pytest.fixture(scope="module")
def sweep_2x2(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real 2x2 sweep of tiny runs, 2 at once: {ok, broken (its train records are missing)} x 2 classification
    weights; then the same command again."""
    directory = tmp_path_factory.mktemp("sweep")
    missing = pipeline.parent / "records" / "missing-*.tfrecord"
    body = _tiny_set() + (
        "  seed: 0\n"
        f"runs:\n  - name: ok\n  - name: broken\n    train_input_reader.tf_record_input_reader.input_path: {missing}\n"
        "grid:\n  model.ssd.loss.classification_weight: [0.5, 1.0]\n"
        "train:\n  checkpoint_every_n: 2\n  eval_every_n: 0\n  steps_per_call: 2\n")
    path = _sweep_file(directory, pipeline, body, name="two_by_two.yaml")
    command = ["sweep", str(path), "--runs-dir", str(directory / "runs")]
    results = {}
    for attempt, extra in (("first", ["--jobs", "2"]), ("again", [])):
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = cli.main(command + extra)
        results[attempt] = (code, output.getvalue())
        if attempt == "first":
            results["mtimes"] = {p: p.stat().st_mtime_ns for p in (directory / "runs").rglob("ckpt-*.index")}
    return {"root": directory / "runs" / "two_by_two", **results}


def _table_rows(out: str) -> dict[str, list[str]]:
    """The final table's cells after the run name, by run."""
    table = out[out.index("\nsweep two_by_two\n"):]
    return {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.startswith(("ok-", "broken-"))}


def test_a_sweep_trains_each_run_records_failures_and_goes_on(sweep_2x2: dict):
    code, out = sweep_2x2["first"]
    root = sweep_2x2["root"]
    assert code == 1, out
    record = json.loads((root / SWEEP_JSON).read_text())
    names = [run["name"] for run in record["runs"]]
    assert names == ["ok-classification_weight_0.5", "ok-classification_weight_1.0",
                     "broken-classification_weight_0.5", "broken-classification_weight_1.0"]
    for run in record["runs"]:
        directory = root / run["name"]
        status = json.loads((directory / "sweep_status.json").read_text())
        assert f"{run['name']}: training (output: {directory / LOG_FILE})" in out
        assert load_pipeline(directory / "pipeline.config").model.ssd.loss.classification_weight == \
            run["hparams"]["classification_weight"]
        if run["name"].startswith("ok"):
            summary = run_summary.read(directory)
            assert (summary.final_step, summary.num_steps) == (NUM_STEPS, NUM_STEPS)
            assert (status["state"], status["exit_code"], status["error"]) == ("finished", 0, "")
            assert status["command"][:4] == [sys.executable, "-m", "tfodkit.cli", "train"]
            assert status["command"][4:] == run["command"][2:]
            # The run's HParams are the ones sweep.json records.
            (data,) = hparams_plugin_data(directory)
            hparams = {name: python_value(value) for name, value in data.session_start_info.hparams.items()}
            assert hparams == {name: value if isinstance(value, str) else float(value)
                               for name, value in run["hparams"].items()}
        else:
            assert run_summary.read(directory) is None
            assert (status["state"], status["exit_code"]) == ("failed", 1)
            assert "no files match" in status["error"] and "missing-*.tfrecord" in status["error"]
            assert status["error"] in (directory / LOG_FILE).read_text()
            assert f"  {run['name']}: tfodkit train: error: " in out  # in the list of failed runs
    rows = _table_rows(out)
    assert [rows[name][:2] for name in names[:2]] == [["finished", f"{NUM_STEPS}/{NUM_STEPS}"]] * 2
    assert [rows[name][:3] for name in names[2:]] == [["failed", "(exit", "1)"]] * 2
    assert f"tfodkit report {root}\ntensorboard --logdir {root}" in out
    # TensorBoard's HParams dashboard at the sweep root: every varied value, the metrics by group.
    experiment = tensorboard_experiment(root)
    domains = {info.name: [python_value(v) for v in info.domain_discrete.values] for info in experiment.hparam_infos}
    assert domains["classification_weight"] == [0.5, 1.0] and domains["seed"] == [0.0]
    assert ("eval", "DetectionBoxes_Precision/mAP@.50IOU") in {(m.name.group, m.name.tag)
                                                               for m in experiment.metric_infos}


def test_a_restarted_sweep_skips_finished_runs_and_retries_failed_ones(sweep_2x2: dict):
    code, out = sweep_2x2["again"]
    root = sweep_2x2["root"]
    assert code == 1, out
    assert "4 run(s) in" in out and "2 to train (2 finished before, skipped)" in out
    assert "ok-classification_weight" not in out.split("\nsweep two_by_two\n")[0].split("skipped)")[1]
    assert out.count("training (output:") == 2
    assert {p: p.stat().st_mtime_ns for p in root.rglob("ckpt-*.index")} == sweep_2x2["mtimes"]
    rows = _table_rows(out)
    names = [f"{kind}-classification_weight_{value}" for kind in ("ok", "broken") for value in ("0.5", "1.0")]
    assert [rows[name][:3] for name in names[:2]] == [["finished", "before", f"{NUM_STEPS}/{NUM_STEPS}"]] * 2
    assert [rows[name][:3] for name in names[2:]] == [["failed", "(exit", "1)"]] * 2
    for name in ("broken-classification_weight_0.5", "broken-classification_weight_1.0"):
        assert (root / name / LOG_FILE).read_text().count("=== ") == 2  # each attempt appends to the log


_CHILD = """
import signal, sys, time
received = []
signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
print("ready", flush=True)
while not received:
    time.sleep(0.05)
time.sleep(0.3)  # a second signal would arrive here
print("signals", len(received), flush=True)
sys.exit(128 + received[0])
"""


def test_a_signal_is_passed_on_once_to_the_running_runs_and_stops_the_sweep(tmp_path: Path):
    jobs = [Job(f"run{i}", tmp_path / f"run{i}", (sys.executable, "-c", _CHILD)) for i in range(3)]
    lines: list[str] = []

    def stop_when_ready() -> None:
        logs = [tmp_path / f"run{i}" / LOG_FILE for i in range(2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.is_file() and "ready" in p.read_text() for p in logs):
            time.sleep(0.05)
        signal.raise_signal(signal.SIGTERM)  # as `kill` would send it to the sweep

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    outcomes, signum = run_jobs(jobs, 2, lines.append)
    assert signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # the sweep's handler is gone again
    assert sorted(outcomes) == ["run0", "run1"]  # the third never started
    for name in ("run0", "run1"):
        assert (outcomes[name].state, outcomes[name].exit_code) == ("interrupted", 143)
        assert "signals 1" in (tmp_path / name / LOG_FILE).read_text()
        status = json.loads((tmp_path / name / "sweep_status.json").read_text())
        assert (status["state"], status["exit_code"]) == ("interrupted", 143)
    assert not (tmp_path / "run2").exists()
    assert any(line.startswith("SIGTERM received: stopping 2 running run(s)") for line in lines)
