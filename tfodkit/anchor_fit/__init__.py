"""How well a pipeline's anchors fit a dataset's boxes, and anchor settings that fit them better."""
