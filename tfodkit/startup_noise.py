"""TensorFlow's start-up lines on a machine without CUDA (driver probes, `failed call to cuInit`), kept off stderr."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

# What TensorFlow's C++ side writes to stderr while it loads and looks for devices, before any tfodkit code runs:
# the CUDA probes of a CPU-only machine (an error line for a missing driver, which new users read as a failure),
# build notes about oneDNN and CPU instructions, and absl's note that logging is not initialised yet. Anything else
# written during start-up is passed on unchanged.
_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^[IWE]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_executor|cuda_diagnostics"
    r"|cuda_dnn|cuda_fft|cuda_blas)\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"
)


def is_noise(line: str) -> bool:
    """Whether a stderr line is one of TensorFlow's start-up notes (see _NOISE)."""
    return bool(_NOISE.search(line))


@contextlib.contextmanager
def quiet_tensorflow_start() -> Iterator[None]:
    """Capture file descriptor 2 while the block runs (a command module's import), import TensorFlow and let it
    look for devices (where the cuInit probe runs), then write back every captured line that is not noise.
    TensorFlow is imported here whether or not the block imported it: command modules that import it only when
    they need it (inside a function) would otherwise print its start-up lines later, uncaptured."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            import tensorflow

            tensorflow.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
