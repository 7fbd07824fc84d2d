"""Training that loses nothing: signals save a checkpoint and resume, bad records are named, or skipped and listed."""

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from test_trainer import TINY
from tfodkit import cli
from tfodkit.dataset.record_check import RecordChecker
from tfodkit.evaluation.summaries import SKIPPED_RECORDS, SKIPPED_RECORDS_COUNT
from tfodkit.training.trainer import TrainOptions, Trainer

TRAIN_FILE = "train-00000-of-00001.tfrecord"


def _train_args(pipeline_path: Path, model_dir: Path, *extra: str) -> list[str]:
    args = ["train", "--pipeline_config_path", str(pipeline_path), "--model_dir", str(model_dir), "--seed", "0",
            "--no_progress", *extra]
    return args + [arg for override in TINY for arg in ("--set", override)]


def _step(prefix: str) -> int:
    return int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def _records(path: Path) -> list[bytes]:
    return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]


def _write(path: Path, records: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def _edited(record: bytes, **features: list[bytes]) -> bytes:
    example = tf.train.Example.FromString(record)
    for key, values in features.items():
        feature = example.features.feature[key.replace("__", "/")]
        del feature.bytes_list.value[:]
        feature.bytes_list.value.extend(values)
    return example.SerializeToString()


def _assert_resumes_with_same_state(pipeline_path: Path, model_dir: Path, expected_step: int) -> None:
    """A new run in model_dir restores the newest checkpoint: its step and the optimizer's momentum slots."""
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert _step(latest) == expected_step
    trainer = Trainer(TrainOptions(str(pipeline_path), str(model_dir), TINY, num_train_steps=expected_step + 2,
                                   steps_per_call=2, progress=False), report=lambda _: None)
    assert trainer.checkpoints.restore_latest() == expected_step
    slots = trainer.optimizer.variables[1:]
    for index, variable in enumerate(slots, start=1):
        saved = tf.train.load_variable(latest, f"optimizer/_variables/{index}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(variable.numpy(), saved)


@pytest.fixture(scope="module")
def trained(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained 4 steps (ckpt-4), to copy before each scenario that damages data."""
    model_dir = tmp_path_factory.mktemp("reliability") / "run"
    assert cli.main(_train_args(pipeline, model_dir, "--num_train_steps", "4", "--checkpoint_every_n", "4",
                                "--steps_per_call", "2", "--eval_every_n", "0")) == 0
    return model_dir


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_resumes(pipeline: Path, tmp_path: Path, signum: int):
    """A signal mid-run (as docker stop / Slurm / Ctrl-C send it) ends the run after the current call with a
    checkpoint of that step, a message naming it and the resume command, and exit status 128 + signal."""
    model_dir, log = tmp_path / "run", tmp_path / "train.log"
    command = [sys.executable, "-m", "tfodkit.cli"] + _train_args(
        pipeline, model_dir, "--num_train_steps", "1000", "--checkpoint_every_n", "4", "--steps_per_call", "2",
        "--eval_every_n", "0")
    with log.open("w") as out:
        # A shell's background job ignores SIGINT and a child inherits that: give the run the default disposition.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 300
        while not (tf.train.latest_checkpoint(str(model_dir)) or process.poll() is not None):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.0)  # mid-run: a few compiled calls after ckpt-4, most likely not on a checkpoint step
        process.send_signal(signum)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"the run did not stop:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert process.returncode == 128 + signum, output[-3000:]
    name = signal.Signals(signum).name
    assert f"{name} received: stopping after the current step" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    latest = tf.train.latest_checkpoint(str(model_dir))
    stopped_at = _step(latest)
    assert stopped_at >= 4
    assert f"stopped by {name} at step {stopped_at} of 1000: checkpoint {latest} written, summaries flushed" in output
    assert "to resume, run the same command again: tfodkit train --pipeline_config_path" in output
    events = EventAccumulator(str(model_dir / "train"), size_guidance={"tensors": 0})
    events.Reload()
    assert stopped_at in [event.step for event in events.Tensors("Loss/total_loss")]
    _assert_resumes_with_same_state(pipeline, model_dir, stopped_at)


def test_a_second_signal_exits_at_once(tmp_path: Path):
    """The first signal asks the loop to stop; a second one, while it is still busy, ends the process at once."""
    script = tmp_path / "busy.py"
    script.write_text(textwrap.dedent("""
        import time
        from tfodkit.training.interruption import StopSignals
        with StopSignals(lambda line: print(line, flush=True)) as stop:
            print("ready", flush=True)
            time.sleep(60)  # a long compiled call that has not come back yet
        print("not reached", flush=True)
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    assert "SIGTERM received" in process.stdout.readline()
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 130 and time.monotonic() - began < 10
    assert "SIGINT again: exiting at once, without saving" in output and "not reached" not in output


def _damaged_copy(pipeline_path: Path, trained_dir: Path, tmp_path: Path, records: list[bytes] | bytes
                  ) -> tuple[Path, Path, Path]:
    """(pipeline, model dir, train file): a copy of the records with the train file replaced, and of the run."""
    data = tmp_path / "records"
    shutil.copytree(pipeline_path.parent / "records", data)
    train_file = data / TRAIN_FILE
    if isinstance(records, bytes):
        train_file.write_bytes(records)
    else:
        _write(train_file, records)
    config = tmp_path / "pipeline.config"
    config.write_text(pipeline_path.read_text().replace(str(pipeline_path.parent / "records"), str(data)))
    model_dir = tmp_path / "run"
    shutil.copytree(trained_dir, model_dir)
    return config, model_dir, train_file


@pytest.mark.parametrize("damage, reason", [
    ("truncated", r"truncated: the record needs \d+ bytes after its header, the file has \d+"),
    ("not_a_tfrecord", r"not a TFRecord file \(its first 12 bytes are no record header\)"),
])
def test_damaged_file_is_named_before_any_step(capsys, pipeline: Path, trained: Path, tmp_path: Path,
                                               damage: str, reason: str):
    """A file cut short or not a TFRecord at all stops `train` before its first step, naming the file, the
    record and what to do; the run's checkpoint is untouched and resumes."""
    original = (pipeline.parent / "records" / TRAIN_FILE).read_bytes()
    content = original[: len(original) * 2 // 3] if damage == "truncated" else b"<annotation>an XML file</annotation>"
    config, model_dir, train_file = _damaged_copy(pipeline, trained, tmp_path, content)
    status = cli.main(_train_args(config, model_dir, "--num_train_steps", "8", "--checkpoint_every_n", "4",
                                  "--steps_per_call", "2"))
    err = capsys.readouterr().err
    assert status == 1
    assert f"train_input_reader: 1 damaged TFRecord file(s):\n  {train_file} record #" in err
    assert re.search(reason, err), err
    assert "Re-run `tfodkit make-tfrecords`" in err and "tfodkit inspect-tfrecord --check" in err
    assert "Traceback" not in err
    _assert_resumes_with_same_state(pipeline, model_dir, 4)  # once the data is fixed (here: the original)


def test_bad_records_mid_run_are_named_after_a_checkpoint_then_skipped(
        capsys, pipeline: Path, trained: Path, tmp_path: Path):
    """An undecodable image and a class missing from the label map inside valid records: the run stops with a
    checkpoint of its last completed step, naming both records; `inspect-tfrecord --check` lists the same ones;
    with --skip-bad-records the run resumes from that checkpoint, trains on the rest and lists what it left out."""
    records = _records(pipeline.parent / "records" / TRAIN_FILE)
    records[2] = _edited(records[2], image__encoded=[b"these bytes are not an image"])
    records[5] = _edited(records[5], image__object__class__text=[b"dragon"] + _class_texts(records[5])[1:])
    config, model_dir, train_file = _damaged_copy(pipeline, trained, tmp_path, records)

    status = cli.main(_train_args(config, model_dir, "--num_train_steps", "40", "--checkpoint_every_n", "20",
                                  "--steps_per_call", "2", "--eval_every_n", "0"))
    err = capsys.readouterr().err
    assert status == 1, err
    assert "train_input_reader: 2 bad record(s):" in err
    assert f"{train_file} record #2 (byte " in err and "not decodable (Unknown image file format" in err
    assert f"{train_file} record #5 (byte " in err and "classes not in the label map: dragon" in err
    latest = tf.train.latest_checkpoint(str(model_dir))
    stopped_at = _step(latest)
    assert stopped_at >= 4
    assert f"Training stopped at step {stopped_at}: checkpoint {latest} holds the steps trained so far" in err
    assert "Traceback" not in err

    label_map = str(pipeline.parent / "records" / "label_map.pbtxt")
    assert cli.main(["inspect-tfrecord", str(train_file), "--check", "--label-map", label_map]) == 1
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(train_file) + " record")]
    assert [line.split(" (byte")[0] for line in listed] == [f"{train_file} record #2", f"{train_file} record #5"]

    status = cli.main(_train_args(config, model_dir, "--num_train_steps", str(stopped_at + 2),
                                  "--checkpoint_every_n", "20", "--steps_per_call", "2", "--eval_every_n", "0",
                                  "--skip-bad-records"))
    out = capsys.readouterr().out
    assert status == 0
    assert f"resuming from {latest} at step {stopped_at}" in out
    assert "bad records left out (--skip-bad-records): 2" in out
    assert f"trained steps {stopped_at}..{stopped_at + 2}" in out
    events = EventAccumulator(str(model_dir / "train"), size_guidance={"tensors": 0})
    events.Reload()
    [count] = events.Tensors(SKIPPED_RECORDS_COUNT)
    assert (count.step, float(tf.make_ndarray(count.tensor_proto))) == (stopped_at, 2.0)
    [listing] = events.Tensors(SKIPPED_RECORDS)
    text = tf.make_ndarray(listing.tensor_proto).item().decode()
    assert f"{train_file} record #2" in text and f"{train_file} record #5" in text


def _class_texts(record: bytes) -> list[bytes]:
    return list(tf.train.Example.FromString(record).features.feature["image/object/class/text"].bytes_list.value)


def test_checker_finds_each_kind_of_damage(pipeline: Path, tmp_path: Path):
    """The framing check reads to the first framing error (what TensorFlow's reader would fail on) and counts the
    readable records before it; a corrupted data checksum is found as TensorFlow finds it."""
    records = _records(pipeline.parent / "records" / TRAIN_FILE)
    path = tmp_path / "x.tfrecord"
    _write(path, records)
    clean = RecordChecker().check_file(path)
    assert (clean.readable, clean.bad, clean.framing_error) == (len(records), (), None)
    content = bytearray(path.read_bytes())
    offset = 3 * 12 + sum(len(r) for r in records[:3]) + 3 * 4 + 12 + 40  # inside record #3's data
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))
    check = RecordChecker().check_file(path)
    assert check.readable == 3 and check.framing_error.index == 3
    assert "corrupted: the record's data checksum does not match" in check.framing_error.reason
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))
    assert len(list(tf.data.TFRecordDataset(str(path)).take(check.readable))) == 3


def test_evaluate_names_a_damaged_eval_file(capsys, pipeline: Path, trained: Path, tmp_path: Path):
    """`tfodkit evaluate` checks its files' framing too: a truncated val file is named, not a DataLossError."""
    config, model_dir, _ = _damaged_copy(pipeline, trained, tmp_path, _records(pipeline.parent / "records" / TRAIN_FILE))
    val_file = config.parent / "records" / "val-00000-of-00001.tfrecord"
    val_file.write_bytes(val_file.read_bytes()[:-100])
    status = cli.main(["evaluate", "--pipeline_config_path", str(config), "--checkpoint_dir", str(model_dir)]
                      + [arg for override in TINY for arg in ("--set", override)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"eval_input_reader[0]: 1 damaged TFRecord file(s):\n  {val_file} record #7 (byte " in err
    assert "truncated" in err and "Traceback" not in err
