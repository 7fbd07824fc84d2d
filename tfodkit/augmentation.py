"""Data augmentation: the OD API's preprocessor steps on one image and its boxes, driven by stateless seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_preprocessor_pb2


class Sample(NamedTuple):
    """One training example while it is being augmented."""

    image: tf.Tensor  # [H, W, 3] float32, pixel values in [0, 255]
    boxes: tf.Tensor  # [N, 4] float32 normalised ymin, xmin, ymax, xmax
    box_index: tf.Tensor  # [N] int32: row of each box in the decoded example (crops drop rows)


# An augmentation step: (sample, seed) -> sample. The seed is an int64 [2] tensor for tf.random.stateless_*.
Step = Callable[[Sample, tf.Tensor], Sample]


def _uniform(seed: tf.Tensor, minval: float, maxval: float) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, minval=minval, maxval=maxval, dtype=tf.float32)


def _sub_seed(seed: tf.Tensor, index: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, index)


def flip_left_right(sample: Sample) -> Sample:
    """Mirror the image; x' = 1 - x for the boxes."""
    ymin, xmin, ymax, xmax = tf.unstack(sample.boxes, axis=1)
    boxes = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=1)
    return Sample(tf.image.flip_left_right(sample.image), boxes, sample.box_index)


def random_horizontal_flip(sample: Sample, seed: tf.Tensor) -> Sample:
    """Flip left-right with probability 0.5 (the OD API flips when a uniform draw exceeds 0.5)."""
    return tf.cond(_uniform(seed, 0.0, 1.0) > 0.5, lambda: flip_left_right(sample), lambda: sample)


def random_image_scale(sample: Sample, seed: tf.Tensor, min_scale_ratio: float = 0.5,
                       max_scale_ratio: float = 2.0) -> Sample:
    """Resize the image by one factor from [min, max) (sizes truncated, corners aligned); boxes unchanged."""
    ratio = _uniform(seed, min_scale_ratio, max_scale_ratio)
    size = tf.cast(tf.shape(sample.image)[:2], tf.float32) * ratio
    size = tf.maximum(tf.cast(size, tf.int32), 1)
    image = tf.compat.v1.image.resize_images(sample.image, size, align_corners=True)
    return Sample(image, sample.boxes, sample.box_index)


def _in_unit_range(adjust: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[Sample], Sample]:
    """Apply a tf.image colour op the OD API's way: on pixels / 255, back to [0, 255], clipped."""

    def apply(sample: Sample) -> Sample:
        image = tf.clip_by_value(adjust(sample.image / 255.0) * 255.0, 0.0, 255.0)
        return Sample(image, sample.boxes, sample.box_index)

    return apply


def random_adjust_brightness(sample: Sample, seed: tf.Tensor, max_delta: float = 0.2) -> Sample:
    """Add one delta from [-max_delta, max_delta) to every pixel (in [0, 1] units)."""
    delta = _uniform(seed, -max_delta, max_delta)
    return _in_unit_range(lambda image: tf.image.adjust_brightness(image, delta))(sample)


def random_adjust_contrast(sample: Sample, seed: tf.Tensor, min_delta: float = 0.8,
                           max_delta: float = 1.25) -> Sample:
    """Scale each channel's deviation from its mean by a factor from [min_delta, max_delta)."""
    factor = _uniform(seed, min_delta, max_delta)
    return _in_unit_range(lambda image: tf.image.adjust_contrast(image, factor))(sample)


def random_adjust_saturation(sample: Sample, seed: tf.Tensor, min_delta: float = 0.8,
                             max_delta: float = 1.25) -> Sample:
    """Multiply the saturation by a factor from [min_delta, max_delta)."""
    factor = _uniform(seed, min_delta, max_delta)
    return _in_unit_range(lambda image: tf.image.adjust_saturation(image, factor))(sample)


def random_adjust_hue(sample: Sample, seed: tf.Tensor, max_delta: float = 0.02) -> Sample:
    """Rotate the hue by a delta from [-max_delta, max_delta) (fractions of a full turn)."""
    delta = _uniform(seed, -max_delta, max_delta)
    return _in_unit_range(lambda image: tf.image.adjust_hue(image, delta))(sample)


@dataclass(frozen=True)
class CropParams:
    """One random crop's rule (the OD API's RandomCropImage fields and defaults)."""

    min_object_covered: float = 1.0
    aspect_ratio_range: tuple[float, float] = (0.75, 1.33)
    area_range: tuple[float, float] = (0.1, 1.0)
    overlap_thresh: float = 0.3
    random_coef: float = 0.0
    clip_boxes: bool = True


# The OD API's ssd_random_crop when the config lists no operations: the SSD paper's seven crops.
SSD_DEFAULT_CROPS: tuple[CropParams, ...] = tuple(
    CropParams(covered, (0.5, 2.0), (0.1, 1.0), covered, 0.15, True)
    for covered in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
)


def crop_to_window(sample: Sample, window: tf.Tensor, overlap_thresh: float, clip_boxes: bool) -> Sample:
    """Cut the image to `window` (normalised ymin, xmin, ymax, xmax on the pixel grid) and keep the boxes the
    OD API keeps: not completely outside the window and with at least `overlap_thresh` of their own area
    inside it; kept boxes are re-expressed in the window's frame (and clipped to [0, 1] if `clip_boxes`)."""
    shape = tf.cast(tf.shape(sample.image)[:2], tf.float32)
    begin = tf.cast(tf.round(window[:2] * shape), tf.int32)
    end = tf.cast(tf.round(window[2:] * shape), tf.int32)
    image = sample.image[begin[0]:end[0], begin[1]:end[1], :]
    ymin, xmin, ymax, xmax = tf.unstack(sample.boxes, axis=1)
    wymin, wxmin, wymax, wxmax = tf.unstack(window)
    outside = (ymin >= wymax) | (xmin >= wxmax) | (ymax <= wymin) | (xmax <= wxmin)
    inter_h = tf.minimum(ymax, wymax) - tf.maximum(ymin, wymin)
    inter_w = tf.minimum(xmax, wxmax) - tf.maximum(xmin, wxmin)
    covered = tf.maximum(inter_h, 0.0) * tf.maximum(inter_w, 0.0) / ((ymax - ymin) * (xmax - xmin))
    keep = tf.logical_not(outside) & (covered >= overlap_thresh)
    boxes = tf.boolean_mask(sample.boxes, keep)
    height, width = wymax - wymin, wxmax - wxmin
    boxes = (boxes - tf.stack([wymin, wxmin, wymin, wxmin])) / tf.stack([height, width, height, width])
    if clip_boxes:
        boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    return Sample(image, boxes, tf.boolean_mask(sample.box_index, keep))


def _strict_crop(sample: Sample, seed: tf.Tensor, params: CropParams) -> Sample:
    """Sample a window covering at least min_object_covered of some box (the whole image when there are no
    boxes), with aspect ratio and area in range; 100 attempts, else the whole image."""
    _, _, window = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(sample.image),
        bounding_boxes=tf.clip_by_value(sample.boxes, 0.0, 1.0)[:, tf.newaxis, :],
        seed=seed,
        min_object_covered=params.min_object_covered,
        aspect_ratio_range=params.aspect_ratio_range,
        area_range=params.area_range,
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    return crop_to_window(sample, tf.reshape(window, [4]), params.overlap_thresh, params.clip_boxes)


def random_crop_image(sample: Sample, seed: tf.Tensor, params: CropParams = CropParams()) -> Sample:
    """Crop with probability 1 - random_coef (the OD API crops when a uniform draw exceeds random_coef)."""
    if params.random_coef <= 0.0:
        return _strict_crop(sample, _sub_seed(seed, 1), params)
    return tf.cond(
        _uniform(_sub_seed(seed, 0), 0.0, 1.0) > params.random_coef,
        lambda: _strict_crop(sample, _sub_seed(seed, 1), params),
        lambda: sample,
    )


def ssd_random_crop(sample: Sample, seed: tf.Tensor, operations: Sequence[CropParams] = SSD_DEFAULT_CROPS) -> Sample:
    """Pick one of `operations` uniformly at random and apply it as random_crop_image."""
    choice = tf.random.stateless_uniform([], _sub_seed(seed, 0), maxval=len(operations), dtype=tf.int32)
    crop_seed = _sub_seed(seed, 1)
    branches = [lambda params=params: random_crop_image(sample, crop_seed, params) for params in operations]
    return tf.switch_case(choice, branches)


def _crop_params(message: object) -> CropParams:
    return CropParams(
        min_object_covered=message.min_object_covered,
        aspect_ratio_range=(message.min_aspect_ratio, message.max_aspect_ratio),
        area_range=(message.min_area, message.max_area),
        overlap_thresh=message.overlap_thresh,
        random_coef=message.random_coef,
        clip_boxes=message.clip_boxes,
    )


def _step(option: pipeline_preprocessor_pb2.PreprocessingStep, where: str) -> Step:
    kind = option.WhichOneof("preprocessing_step")
    config = getattr(option, kind) if kind else None
    if kind == "random_horizontal_flip":
        if config.keypoint_flip_permutation:
            raise TfodkitError(f"{where}.random_horizontal_flip.keypoint_flip_permutation: keypoints are not supported")
        return random_horizontal_flip
    if kind == "random_image_scale":
        low, high = config.min_scale_ratio, config.max_scale_ratio
        return lambda sample, seed: random_image_scale(sample, seed, low, high)
    if kind == "random_adjust_brightness":
        delta = config.max_delta
        return lambda sample, seed: random_adjust_brightness(sample, seed, delta)
    if kind == "random_adjust_contrast":
        low, high = config.min_delta, config.max_delta
        return lambda sample, seed: random_adjust_contrast(sample, seed, low, high)
    if kind == "random_adjust_saturation":
        low, high = config.min_delta, config.max_delta
        return lambda sample, seed: random_adjust_saturation(sample, seed, low, high)
    if kind == "random_adjust_hue":
        delta = config.max_delta
        return lambda sample, seed: random_adjust_hue(sample, seed, delta)
    if kind == "random_crop_image":
        params = _crop_params(config)
        return lambda sample, seed: random_crop_image(sample, seed, params)
    if kind == "ssd_random_crop":
        operations = tuple(_crop_params(op) for op in config.operations) or SSD_DEFAULT_CROPS
        return lambda sample, seed: ssd_random_crop(sample, seed, operations)
    raise TfodkitError(
        f"{where}: {kind or 'an empty step'} is not supported; tfodkit implements random_horizontal_flip, "
        "ssd_random_crop, random_crop_image, random_adjust_brightness, random_adjust_contrast, "
        "random_adjust_saturation, random_adjust_hue and random_image_scale"
    )


def build_augmentation(
    options: Sequence[pipeline_preprocessor_pb2.PreprocessingStep],
    field: str = "train_config.data_augmentation_options",
) -> Step:
    """The config's augmentation steps as one step, applied in the order given, each with its own seed."""
    steps = [_step(option, f"{field}[{index}]") for index, option in enumerate(options)]

    def augment(sample: Sample, seed: tf.Tensor) -> Sample:
        for index, step in enumerate(steps):
            sample = step(sample, _sub_seed(seed, index))
        return sample

    return augment
