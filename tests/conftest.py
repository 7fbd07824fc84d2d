"""Imports tfodkit before any test module imports TensorFlow, so tests run with the settings users get."""

import tfodkit  # noqa: F401
