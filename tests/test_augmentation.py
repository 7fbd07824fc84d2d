"""Augmentation steps: boxes follow the pixels, crops keep the boxes the OD API keeps, colours stay in range."""

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from tfodkit import augmentation as aug
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_train_pb2

HEIGHT, WIDTH = 60, 80
# A bright square (rows 10..29, columns 8..27) on a dark, textured background.
SQUARE = (10, 8, 30, 28)  # ymin, xmin, ymax, xmax in pixels, exclusive ends


def _scene() -> aug.Sample:
    rng = np.random.default_rng(0)
    image = rng.uniform(20, 60, (HEIGHT, WIDTH, 3)).astype(np.float32)
    y0, x0, y1, x1 = SQUARE
    image[y0:y1, x0:x1] = 250.0
    boxes = np.array([[y0 / HEIGHT, x0 / WIDTH, y1 / HEIGHT, x1 / WIDTH]], np.float32)
    return aug.Sample(tf.constant(image), tf.constant(boxes), tf.constant([0]))


def _region_mean(image: np.ndarray, box: np.ndarray) -> float:
    """Mean pixel value inside a normalised box, measured on the image's own pixel grid."""
    height, width = image.shape[:2]
    y0, x0, y1, x1 = np.round(box * [height, width, height, width]).astype(int)
    return float(image[y0:y1, x0:x1].mean())


def _seed(value: int) -> tf.Tensor:
    return tf.constant([value, 0], tf.int64)


def test_flip_moves_boxes_with_the_pixels():
    sample = _scene()
    flipped = aug.flip_left_right(sample)
    box = flipped.boxes.numpy()[0]
    np.testing.assert_allclose(box, [10 / HEIGHT, 1 - 28 / WIDTH, 30 / HEIGHT, 1 - 8 / WIDTH], atol=1e-6)
    assert _region_mean(flipped.image.numpy(), box) == pytest.approx(250.0)
    # Where the square was is now background.
    assert _region_mean(flipped.image.numpy(), sample.boxes.numpy()[0]) < 100


def test_random_horizontal_flip_flips_about_half_the_time_and_boxes_follow():
    sample = _scene()
    flips = 0
    for value in range(40):
        out = aug.random_horizontal_flip(sample, _seed(value))
        box = out.boxes.numpy()[0]
        assert _region_mean(out.image.numpy(), box) == pytest.approx(250.0)
        flips += not np.allclose(box, sample.boxes.numpy()[0])
    assert 8 <= flips <= 32


def test_crop_to_window_keeps_boxes_by_their_own_area_inside_and_renormalises():
    image = tf.reshape(tf.range(100 * 200 * 3, dtype=tf.float32), [100, 200, 3])
    boxes = tf.constant([
        [0.30, 0.30, 0.50, 0.50],  # fully inside the window
        [0.10, 0.00, 0.30, 0.20],  # 1/4 of its area inside: kept at 0.2, dropped at 0.3
        [0.80, 0.80, 0.90, 0.90],  # completely outside
        [0.00, 0.60, 0.40, 0.75],  # touches the window's right edge only: outside
    ], tf.float32)
    sample = aug.Sample(image, boxes, tf.constant([0, 1, 2, 3]))
    window = tf.constant([0.2, 0.1, 0.7, 0.6])  # rows 20..70, columns 20..120
    out = aug.crop_to_window(sample, window, overlap_thresh=0.2, clip_boxes=True)
    np.testing.assert_array_equal(out.image.numpy(), image.numpy()[20:70, 20:120])
    np.testing.assert_array_equal(out.box_index.numpy(), [0, 1])
    # Pixel boxes minus the window origin, over the window size (50 rows, 100 columns).
    expected = np.array([[(30 - 20) / 50, (60 - 20) / 100, (50 - 20) / 50, (100 - 20) / 100],
                         [0.0, 0.0, (30 - 20) / 50, (40 - 20) / 100]])
    np.testing.assert_allclose(out.boxes.numpy(), expected, atol=1e-6)

    strict = aug.crop_to_window(sample, window, overlap_thresh=0.3, clip_boxes=False)
    np.testing.assert_array_equal(strict.box_index.numpy(), [0])
    everything = aug.crop_to_window(sample, window, overlap_thresh=0.0, clip_boxes=False)
    np.testing.assert_array_equal(everything.box_index.numpy(), [0, 1])
    assert everything.boxes.numpy()[1, 0] == pytest.approx((10 - 20) / 50)  # unclipped: above the window


def test_random_crop_covers_the_object_and_boxes_follow_the_pixels():
    sample = _scene()
    params = aug.CropParams(min_object_covered=1.0, aspect_ratio_range=(0.5, 2.0), area_range=(0.1, 1.0),
                            overlap_thresh=0.3, clip_boxes=False)
    shapes = set()
    for value in range(20):
        out = aug.random_crop_image(sample, _seed(value), params)
        image, boxes = out.image.numpy(), out.boxes.numpy()
        shapes.add(image.shape)
        # The only box is fully covered, so it is kept inside [0, 1] and still frames the bright square.
        assert boxes.shape == (1, 4)
        assert boxes.min() >= -1e-6 and boxes.max() <= 1 + 1e-6
        assert _region_mean(image, boxes[0]) == pytest.approx(250.0)
        area = image.shape[0] * image.shape[1] / (HEIGHT * WIDTH)
        assert 0.1 - 0.02 <= area <= 1.0
    assert len(shapes) > 5


def test_random_coef_leaves_that_share_uncropped():
    sample = _scene()
    params = aug.CropParams(min_object_covered=0.0, area_range=(0.1, 0.5), random_coef=0.5)
    uncropped = sum(aug.random_crop_image(sample, _seed(v), params).image.shape == (HEIGHT, WIDTH, 3)
                    for v in range(40))
    assert 8 <= uncropped <= 32


def test_ssd_random_crop_default_is_the_od_api_seven_operations():
    step = pipeline_train_pb2.TrainConfig()
    text_format.Parse("data_augmentation_options { ssd_random_crop { } }", step)
    # The OD API's ssd_random_crop defaults (core/preprocessor.py).
    assert [p.min_object_covered for p in aug.SSD_DEFAULT_CROPS] == [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    assert [p.overlap_thresh for p in aug.SSD_DEFAULT_CROPS] == [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    assert {(p.aspect_ratio_range, p.area_range, p.random_coef, p.clip_boxes) for p in aug.SSD_DEFAULT_CROPS} == {
        ((0.5, 2.0), (0.1, 1.0), 0.15, True)}
    augment = aug.build_augmentation(step.data_augmentation_options)
    sample = _scene()
    for value in range(20):
        out = augment(sample, _seed(value))
        boxes = out.boxes.numpy()
        assert boxes.size == 0 or (boxes.min() >= 0.0 and boxes.max() <= 1.0)
        if boxes.size:
            # Clipped to the crop, the box still holds only square pixels.
            assert _region_mean(out.image.numpy(), boxes[0]) == pytest.approx(250.0)


def test_ssd_random_crop_operations_from_the_config_are_used():
    step = pipeline_train_pb2.TrainConfig()
    text_format.Parse("""data_augmentation_options { ssd_random_crop { operations {
        min_object_covered: 0.0 min_aspect_ratio: 0.9 max_aspect_ratio: 1.1 min_area: 0.2 max_area: 0.3
        overlap_thresh: 0.0 random_coef: 0.0 } } }""", step)
    augment = aug.build_augmentation(step.data_augmentation_options)
    for value in range(5):
        height, width = augment(_scene(), _seed(value)).image.shape[:2]
        # About a square (width / height in 0.9..1.1) of 0.2..0.3 of the image's area.
        assert 0.2 - 0.02 <= height * width / (HEIGHT * WIDTH) <= 0.3 + 0.02
        assert 0.85 <= width / height <= 1.15


def test_colour_steps_stay_in_range_and_keep_boxes():
    sample = _scene()
    steps = {
        "brightness": lambda s, seed: aug.random_adjust_brightness(s, seed, 0.5),
        "contrast": lambda s, seed: aug.random_adjust_contrast(s, seed, 0.2, 3.0),
        "saturation": lambda s, seed: aug.random_adjust_saturation(s, seed, 0.2, 3.0),
        "hue": lambda s, seed: aug.random_adjust_hue(s, seed, 0.5),
    }
    for name, step in steps.items():
        changed = False
        for value in range(6):
            out = step(sample, _seed(value))
            image = out.image.numpy()
            assert image.min() >= 0.0 and image.max() <= 255.0, name
            np.testing.assert_array_equal(out.boxes.numpy(), sample.boxes.numpy())
            changed |= not np.allclose(image, sample.image.numpy())
        assert changed, name


def test_brightness_adds_one_delta_within_max_delta():
    image = tf.fill([8, 8, 3], 100.0)
    sample = aug.Sample(image, tf.zeros([0, 4]), tf.zeros([0], tf.int32))
    deltas = [float(aug.random_adjust_brightness(sample, _seed(v), 0.2).image.numpy().mean()) - 100.0
              for v in range(20)]
    assert all(abs(d) <= 0.2 * 255 + 1e-3 for d in deltas)
    assert max(deltas) > 10 and min(deltas) < -10
    out = aug.random_adjust_brightness(sample, _seed(3), 0.2).image.numpy()
    assert np.ptp(out) < 1e-3  # one delta for every pixel


def test_contrast_keeps_channel_means_and_hue_saturation_keep_grey():
    sample = _scene()
    out = aug.random_adjust_contrast(sample, _seed(1), 0.9, 0.95).image.numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1)), sample.image.numpy().mean(axis=(0, 1)), rtol=1e-3)
    grey = aug.Sample(tf.fill([6, 6, 3], 90.0), tf.zeros([0, 4]), tf.zeros([0], tf.int32))
    for step in (aug.random_adjust_hue, aug.random_adjust_saturation):
        np.testing.assert_allclose(step(grey, _seed(2)).image.numpy(), 90.0, atol=1e-3)


def test_random_image_scale_resizes_within_range_and_keeps_boxes():
    sample = _scene()
    sizes = set()
    for value in range(10):
        out = aug.random_image_scale(sample, _seed(value), 0.5, 2.0)
        height, width = out.image.shape[:2]
        sizes.add(height)
        assert HEIGHT * 0.5 - 1 <= height <= HEIGHT * 2 and WIDTH * 0.5 - 1 <= width <= WIDTH * 2
        assert height / HEIGHT == pytest.approx(width / WIDTH, abs=0.05)
        np.testing.assert_array_equal(out.boxes.numpy(), sample.boxes.numpy())
        # The interior of the box is still the square (edges blur when resampling).
        box = out.boxes.numpy()[0]
        inner = box + np.array([1, 1, -1, -1]) * (box[2:] - box[:2]).repeat(2) * 0.15
        assert _region_mean(out.image.numpy(), inner) > 240
    assert len(sizes) > 3


def test_build_augmentation_is_deterministic_per_seed_and_rejects_unknown_steps():
    config = pipeline_train_pb2.TrainConfig()
    text_format.Parse("""
        data_augmentation_options { random_horizontal_flip { } }
        data_augmentation_options { random_crop_image { min_object_covered: 0.0 overlap_thresh: 0.0 } }
        data_augmentation_options { random_adjust_brightness { } }
        data_augmentation_options { random_adjust_contrast { } }
        data_augmentation_options { random_adjust_saturation { } }
        data_augmentation_options { random_adjust_hue { } }
        data_augmentation_options { random_image_scale { } }
    """, config)
    augment = aug.build_augmentation(config.data_augmentation_options)
    sample = _scene()
    first, again, other = (augment(sample, _seed(v)) for v in (5, 5, 6))
    np.testing.assert_array_equal(first.image.numpy(), again.image.numpy())
    np.testing.assert_array_equal(first.boxes.numpy(), again.boxes.numpy())
    assert first.image.shape != other.image.shape or not np.array_equal(first.image.numpy(), other.image.numpy())

    text_format.Parse("data_augmentation_options { random_pad_image { } }", config)
    with pytest.raises(TfodkitError, match=r"data_augmentation_options\[7\]: random_pad_image is not supported"):
        aug.build_augmentation(config.data_augmentation_options)
