"""Shared by the benchmarks: TensorFlow loaded with tfodkit's settings, its start-up noise kept off stderr."""

from __future__ import annotations

import tfodkit  # noqa: F401  (sets TensorFlow's environment before TensorFlow loads)
from tfodkit.startup_noise import quiet_tensorflow_start

with quiet_tensorflow_start():  # TensorFlow's CUDA probes and build notes, as `tfodkit` commands keep them off
    import tensorflow as tf

__all__ = ["tf"]
