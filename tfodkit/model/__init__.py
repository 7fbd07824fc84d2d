"""SSD models built from pipeline.config with Keras 3 (importing it also sets how TensorFlow optimises them)."""

import os

import tensorflow as tf

if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
    # With oneDNN kernels, grappler's remapper fuses convolution + batch norm + activation into oneDNN fused
    # convolutions that take 20x longer on a single image (1.16 s vs 54 ms per FPNLite forward pass on a
    # 2-core AVX2 CPU); batch-8 training runs at the same speed without that fusion (docs/benchmarks.md).
    tf.config.optimizer.set_experimental_options({"remapping": False})
