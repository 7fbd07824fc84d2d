"""Our TF-free Example serialisation is read by TensorFlow exactly as the OD API's decoder expects."""

import hashlib
import io

import numpy as np
import tensorflow as tf
from PIL import Image

from tfodkit import label_map
from tfodkit.dataset.example_decoder import FEATURE_SPEC, ExampleDecoder
from tfodkit.dataset.tf_example import EncodedImage, ObjectBox, encode_example


def _png(height: int, width: int) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue(), pixels


def _record(objects: list[ObjectBox]) -> tuple[bytes, np.ndarray]:
    data, pixels = _png(20, 30)
    image = EncodedImage(data, "png", 20, 30, "a.png", "17", hashlib.sha256(data).hexdigest())
    return encode_example(image, objects), pixels


def test_tensorflow_parses_our_bytes_as_a_tf_train_example():
    serialized, _ = _record([ObjectBox("cat", 1, 0.1, 0.2, 0.5, 0.6, difficult=True, view="Left")])
    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    assert feature["image/source_id"].bytes_list.value == [b"17"]
    assert feature["image/object/view"].bytes_list.value == [b"Left"]
    assert feature["image/object/difficult"].int64_list.value == [1]
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    assert parsed["image/format"].numpy() == b"png"
    np.testing.assert_allclose(tf.sparse.to_dense(parsed["image/object/bbox/xmax"]).numpy(), [0.5])


def test_decoder_returns_pixels_boxes_and_classes_from_text_through_the_label_map():
    objects = [ObjectBox("dog", 7, 0.1, 0.2, 0.5, 0.6), ObjectBox("cat", 9, 0.0, 0.25, 1.0, 0.75)]
    serialized, pixels = _record(objects)
    decoded = ExampleDecoder(label_map.from_class_names(["cat", "dog"]))(tf.constant(serialized))
    np.testing.assert_array_equal(decoded["image"].numpy(), pixels)
    np.testing.assert_allclose(decoded["boxes"].numpy(), [[0.2, 0.1, 0.6, 0.5], [0.25, 0.0, 0.75, 1.0]], atol=1e-7)
    assert decoded["classes"].numpy().tolist() == [2, 1]  # text wins over the stored label


def test_decoder_uses_class_label_when_text_is_absent_and_flags_unknown_text():
    serialized, _ = _record([ObjectBox("", 3, 0.1, 0.2, 0.5, 0.6)])
    example = tf.train.Example.FromString(serialized)
    del example.features.feature["image/object/class/text"]
    decoded = ExampleDecoder(label_map.from_class_names(["a", "b", "c"]))(tf.constant(example.SerializeToString()))
    assert decoded["classes"].numpy().tolist() == [3]
    unknown, _ = _record([ObjectBox("zebra", 1, 0.1, 0.2, 0.5, 0.6)])
    decoded = ExampleDecoder(label_map.from_class_names(["a"]))(tf.constant(unknown))
    assert decoded["classes"].numpy().tolist() == [-1]


def test_decoder_runs_inside_tf_data():
    serialized, _ = _record([ObjectBox("cat", 1, 0.1, 0.2, 0.5, 0.6)])
    dataset = tf.data.Dataset.from_tensors(serialized).repeat(3).map(ExampleDecoder(label_map.from_class_names(["cat"])))
    assert [batch["classes"].numpy().tolist() for batch in dataset] == [[1], [1], [1]]
