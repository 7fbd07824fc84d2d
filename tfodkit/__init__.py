"""tfodkit: the TensorFlow 2 Object Detection API workflow on current TensorFlow and Keras 3."""

__version__ = "0.1.0"
