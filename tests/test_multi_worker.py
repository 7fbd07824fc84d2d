"""MultiWorkerMirroredStrategy from TF_CONFIG: two local `tfodkit train` processes train one model together."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from test_train_step import TINY, _make_records

from tfodkit.config.loader import pipeline_text
from tfodkit.config.customize import PipelineChoices, new_pipeline

STEPS = 4


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_workers(tmp_path: Path, num_steps: int, checkpoint_every_n: int) -> tuple[list[subprocess.Popen], list[Path]]:
    """Two local `tfodkit train` workers of one TF_CONFIG cluster (model dirs worker0, worker1; logs beside)."""
    records = _make_records(tmp_path)
    config = new_pipeline(PipelineChoices(
        model="ssd_mobilenet_v2_320x320", label_map=str(records / "label_map.pbtxt"),
        train=str(records / "train-*.tfrecord"), val=str(records / "val-*.tfrecord"), num_steps=num_steps))
    pipeline = tmp_path / "pipeline.config"
    pipeline.write_text(pipeline_text(config), encoding="utf-8")
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes, logs = [], []
    for index in range(2):
        model_dir = tmp_path / f"worker{index}"
        command = [sys.executable, "-m", "tfodkit.cli", "train", "--pipeline_config_path", str(pipeline),
                   "--model_dir", str(model_dir), "--checkpoint_every_n", str(checkpoint_every_n),
                   "--steps_per_call", "2", "--eval_every_n", "0", "--seed", "0", "--no_progress"]
        command += [arg for override in TINY for arg in ("--set", override)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        logs.append(tmp_path / f"worker{index}.log")
        with logs[-1].open("w") as out:
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env))
    return processes, logs


def test_two_workers_train_in_step_and_only_the_chief_writes_to_model_dir(tmp_path: Path):
    processes, logs = _start_workers(tmp_path, STEPS, 2)
    try:
        for process, log in zip(processes, logs):
            assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for process in processes:
            process.kill()
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    latest = tf.train.latest_checkpoint(str(chief))
    assert latest is not None and latest.endswith(f"ckpt-{STEPS}")
    assert int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE")) == STEPS
    # The other worker's checkpoints went to a scratch folder, removed after each save; no events of its own.
    assert tf.train.latest_checkpoint(str(other)) is None
    assert not list(other.glob("workertemp_*")) and not (other / "train").exists()
    assert (chief / "train").is_dir() and (chief / "eval").is_dir()
    # Both workers applied the same all-reduced updates, so their final evaluations (each worker evaluates on its
    # own) agree; only closely, since each worker's batch norms average the statistics of its own half-batches.
    finals = []
    for log in logs:
        lines = [line for line in log.read_text().splitlines() if line.startswith(f"step {STEPS}: eval")]
        assert len(lines) == 1, log.read_text()[-3000:]
        losses = re.search(r"eval loss (\d+\.\d+) vs train-sample (\d+\.\d+)", lines[0])
        assert losses, lines[0]
        finals.append([float(value) for value in losses.groups()])
    np.testing.assert_allclose(finals[1], finals[0], rtol=1e-3)
    for log in logs:
        assert f"trained steps 0..{STEPS}" in log.read_text()


def test_sigterm_to_one_worker_saves_every_worker_at_the_same_step(tmp_path: Path):
    """A scheduler's SIGTERM to one worker goes through TensorFlow's PreemptionCheckpointHandler: the workers agree
    on a step, the chief writes its checkpoint to MODEL_DIR, and both exit with 143."""
    processes, logs = _start_workers(tmp_path, 1000, 2)
    chief = tmp_path / "worker0"
    try:
        deadline = time.monotonic() + 400
        while tf.train.latest_checkpoint(str(chief)) is None:  # mid-run once the first checkpoint is written
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes), logs[0].read_text()[-3000:]
            time.sleep(0.5)
        processes[1].send_signal(signal.SIGTERM)
        statuses = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert statuses == [143, 143], [log.read_text()[-3000:] for log in logs]
    latest = tf.train.latest_checkpoint(str(chief))
    step = int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert step >= 2 and latest.endswith(f"ckpt-{step}")
    for log in logs:
        assert "stopped by SIGTERM at step" in log.read_text()

