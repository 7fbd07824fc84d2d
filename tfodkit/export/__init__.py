"""Export: a trained checkpoint -> models to deploy (SavedModel, TFLite) and the loader they share."""
