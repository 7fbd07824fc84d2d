"""Dataset side of the workflow: LabelImg XML, images, splits and TFRecords."""
