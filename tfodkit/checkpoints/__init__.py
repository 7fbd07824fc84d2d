"""Weight importers: OD API TF1 frozen graphs and checkpoints, TF2 checkpoints, Keras backbone files."""
