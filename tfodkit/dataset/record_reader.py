"""Read TFRecords back through ExampleDecoder (the training input's parsing) and check each record."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.errors import TfodkitError, op_error_text
from tfodkit.label_map import LabelMap


@dataclasses.dataclass(frozen=True)
class DecodedRecord:
    """One decoded example as NumPy values; boxes are [N, 4] normalised ymin, xmin, ymax, xmax."""

    path: Path
    index: int  # position in its file
    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray  # label-map ids; -1 where the class text is not in the label map
    class_text: list[str]
    filename: str
    source_id: str
    height: int  # as written in image/height and image/width
    width: int

    def problems(self) -> list[str]:
        """What would make this record train wrongly: size keys that disagree with the pixels, boxes out of
        range or empty, classes missing from the label map."""
        found = []
        real_height, real_width = self.image.shape[:2]
        if (real_height, real_width) != (self.height, self.width):
            found.append(f"image is {real_width}x{real_height} but image/width,height say {self.width}x{self.height}")
        if len(self.classes) != len(self.boxes):
            found.append(f"{len(self.boxes)} boxes but {len(self.classes)} classes")
        for number, (ymin, xmin, ymax, xmax) in enumerate(self.boxes.tolist()):
            if min(ymin, xmin, ymax, xmax) < 0.0 or max(ymin, xmin, ymax, xmax) > 1.0:
                found.append(f"box #{number} lies outside the image: {[ymin, xmin, ymax, xmax]}")
            if xmax <= xmin or ymax <= ymin:
                found.append(f"box #{number} is empty: {[ymin, xmin, ymax, xmax]}")
        unknown = sorted({text for text, cls in zip(self.class_text, self.classes.tolist()) if cls < 0})
        if unknown:
            found.append(f"classes not in the label map: {', '.join(unknown)}")
        return found


def read_records(files: list[Path], label_map: LabelMap | None, limit: int | None) -> Iterator[DecodedRecord]:
    """The first `limit` records (all when None) of the files in order, decoded as training will decode them."""
    decoder = ExampleDecoder(label_map)
    remaining = limit
    for path in files:
        if remaining is not None and remaining <= 0:
            return
        dataset = tf.data.TFRecordDataset(str(path)).map(decoder)
        if remaining is not None:
            dataset = dataset.take(remaining)
        index = 0
        try:
            for decoded in dataset:
                values = {key: value.numpy() for key, value in decoded.items()}
                yield DecodedRecord(
                    path=path,
                    index=index,
                    image=values["image"],
                    boxes=values["boxes"],
                    classes=values["classes"],
                    class_text=[text.decode("utf-8", "replace") for text in values["class_text"]],
                    filename=values["filename"].decode("utf-8", "replace"),
                    source_id=values["source_id"].decode("utf-8", "replace"),
                    height=int(values["height"]),
                    width=int(values["width"]),
                )
                index += 1
        except tf.errors.OpError as error:
            raise TfodkitError(f"{path}: record #{index} cannot be read or decoded: {op_error_text(error)}") from None
        if remaining is not None:
            remaining -= index
