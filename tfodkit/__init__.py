"""tfodkit: the TensorFlow 2 Object Detection API workflow on current TensorFlow and Keras 3."""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512-class features; on the AVX2
# machines our users train on they make the training step about 1.3x faster (docs/benchmarks.md). This must
# happen before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# TensorFlow's C++ INFO and WARNING lines are about its own internals (a bad record prints "OP_REQUIRES failed" and
# "Local rendezvous is aborting" above tfodkit's error naming the record); its errors still show. Read when
# TensorFlow loads, so set here for the CLI, the benchmarks and the tests alike; the environment still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
