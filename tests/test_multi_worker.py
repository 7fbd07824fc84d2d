"""MultiWorkerMirroredStrategy from TF_CONFIG: two local `tfodkit train` processes train one model together."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
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


def test_two_workers_train_in_step_and_only_the_chief_writes_to_model_dir(tmp_path: Path):
    records = _make_records(tmp_path)
    config = new_pipeline(PipelineChoices(
        model="ssd_mobilenet_v2_320x320", label_map=str(records / "label_map.pbtxt"),
        train=str(records / "train-*.tfrecord"), val=str(records / "val-*.tfrecord"), num_steps=STEPS))
    pipeline = tmp_path / "pipeline.config"
    pipeline.write_text(pipeline_text(config), encoding="utf-8")
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes, logs = [], []
    for index in range(2):
        model_dir = tmp_path / f"worker{index}"
        command = [sys.executable, "-m", "tfodkit.cli", "train", "--pipeline_config_path", str(pipeline),
                   "--model_dir", str(model_dir), "--checkpoint_every_n", "2", "--steps_per_call", "2",
                   "--eval_every_n", "0", "--seed", "0", "--no_progress"]
        command += [arg for override in TINY for arg in ("--set", override)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        logs.append(tmp_path / f"worker{index}.log")
        with logs[-1].open("w") as out:
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env))
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
