"""Parse OD API tf.train.Examples into image and box tensors: the one decoder training and inspection share."""

from __future__ import annotations

import tensorflow as tf

from tfodkit.dataset import tf_example as keys
from tfodkit.label_map import LabelMap

FEATURE_SPEC: dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature] = {
    keys.IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string),
    keys.IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    keys.IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=1),
    keys.IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=1),
    keys.IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
    keys.IMAGE_SOURCE_ID: tf.io.FixedLenFeature((), tf.string, default_value=""),
    keys.IMAGE_SHA256: tf.io.FixedLenFeature((), tf.string, default_value=""),
    keys.BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
    keys.BBOX_XMAX: tf.io.VarLenFeature(tf.float32),
    keys.BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
    keys.BBOX_YMAX: tf.io.VarLenFeature(tf.float32),
    keys.CLASS_TEXT: tf.io.VarLenFeature(tf.string),
    keys.CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
    keys.DIFFICULT: tf.io.VarLenFeature(tf.int64),
    keys.TRUNCATED: tf.io.VarLenFeature(tf.int64),
}


class ExampleDecoder:
    """Decodes serialised examples; class ids come from class/text through the label map (class/label only
    where text is absent). Objects whose text is not in the label map get class -1, so callers can report them.
    """

    def __init__(self, label_map: LabelMap | None = None) -> None:
        self._table = None
        if label_map is not None:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(label_map.ids.keys())),
                    tf.constant(list(label_map.ids.values()), tf.int32),
                ),
                default_value=-1,
            )

    def _class_ids(self, text: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(labels, tf.int32)
        if self._table is None:
            return labels
        return tf.cond(tf.size(text) > 0, lambda: self._table.lookup(text), lambda: labels)

    def __call__(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """Decode one example: uint8 RGB image, boxes [N,4] as normalised ymin,xmin,ymax,xmax, classes."""
        parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
        dense = {key: tf.sparse.to_dense(value) if isinstance(value, tf.SparseTensor) else value
                 for key, value in parsed.items()}
        image = tf.io.decode_image(dense[keys.IMAGE_ENCODED], channels=3, expand_animations=False)
        boxes = tf.stack(
            [dense[keys.BBOX_YMIN], dense[keys.BBOX_XMIN], dense[keys.BBOX_YMAX], dense[keys.BBOX_XMAX]], axis=1
        )
        return {
            "image": image,
            "boxes": boxes,
            "classes": self._class_ids(dense[keys.CLASS_TEXT], dense[keys.CLASS_LABEL]),
            "class_text": dense[keys.CLASS_TEXT],
            "difficult": tf.cast(dense[keys.DIFFICULT], tf.bool),
            "truncated": tf.cast(dense[keys.TRUNCATED], tf.bool),
            "filename": dense[keys.IMAGE_FILENAME],
            "source_id": dense[keys.IMAGE_SOURCE_ID],
            "sha256": dense[keys.IMAGE_SHA256],
            "height": tf.cast(dense[keys.IMAGE_HEIGHT], tf.int32),
            "width": tf.cast(dense[keys.IMAGE_WIDTH], tf.int32),
        }
