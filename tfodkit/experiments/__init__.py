"""Experiments: sweeps over pipeline.config variants and the report that compares their runs."""
