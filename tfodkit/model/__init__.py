"""SSD models built from pipeline.config with Keras 3."""
