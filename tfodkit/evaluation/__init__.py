"""In-process evaluation: COCO box metrics, the eval-minus-train gap and the TensorBoard summaries."""
