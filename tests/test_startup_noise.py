"""TensorFlow's start-up lines (the cuInit probe of a CPU machine) stay off a tfodkit command's stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfodkit.startup_noise import is_noise, quiet_tensorflow_start

# Lines TensorFlow 2.21 writes on a machine without CUDA, as they appear on stderr.
CUINIT = ("E0000 00:00:1796299150.402964   11947 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
          "Failed call to cuInit: UNKNOWN ERROR (303)")
STUB = ("I0000 00:00:1796299146.013113   11947 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.")


def test_noise_lines_are_recognised_and_others_are_not() -> None:
    assert is_noise(CUINIT)
    assert is_noise(STUB)
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_noise("E0000 00:00:1796299150.402964   11947 op_kernel.cc:1830] OP_REQUIRES failed: bad image")
    assert not is_noise("Traceback (most recent call last):")


def test_captured_stderr_keeps_everything_but_the_noise(capfd) -> None:
    with quiet_tensorflow_start():
        os.write(2, f"{CUINIT}\nsomething the user must see\n{STUB}\n".encode())
    err = capfd.readouterr().err
    assert err == "something the user must see\n"


# inspect-tfrecord's module imports TensorFlow when it is imported; inspect-dataset's only inside the function
# that reads records (a LabelImg folder needs no TensorFlow), after the command module's import.
@pytest.mark.parametrize("command, error", [
    ("inspect-tfrecord", "{bad}: record #0"),
    ("inspect-dataset", "{bad} record #0: not a tf.train.Example with the OD API's keys (Could not parse example"),
])
def test_a_command_on_a_cpu_machine_prints_no_cuinit_line(tmp_path, command: str, error: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    bad = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(bad)) as writer:
        writer.write(b"not a tf.train.Example")  # read by TensorFlow ops, so the device probe runs
    result = subprocess.run([sys.executable, "-m", "tfodkit.cli", command, str(bad)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert "cuInit" not in result.stderr and "cuda" not in result.stderr.lower()
    assert result.returncode == 1 and error.format(bad=bad) in result.stderr  # the user's error still shows
    # ... as the only line: no TensorFlow warning above it, no graph-function names or op suffix inside it
    assert result.stderr.count("\n") == 1 and "{{" not in result.stderr and "[Op:" not in result.stderr
