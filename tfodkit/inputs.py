"""Training and evaluation input pipelines: TFRecord globs -> decoded, augmented, resized, padded batches."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import tensorflow as tf

from tfodkit import label_map as label_maps
from tfodkit.augmentation import Sample, Step, build_augmentation
from tfodkit.dataset.example_decoder import ExampleDecoder
from tfodkit.dataset.record_check import BadRecord, FileCheck
from tfodkit.errors import TfodkitError
from tfodkit.model.builder import image_resizer
from tfodkit.model.preprocessing import FixedShapeResizer
from tfodkit.protos import pipeline_pb2

MAX_PARALLEL_FILES = 8  # files read at once by the interleave
# How a failed check of _checked_classes reads in the InvalidArgumentError that iteration raises.
_CHECK_FAILED = re.compile(r"assertion failed: \[((?:train_input_reader|eval_input_reader\[0\]): image .*)\]$",
                           re.MULTILINE)


@dataclass(frozen=True)
class RecordSkips:
    """Records left out of the input (`--skip-bad-records`), from a RecordChecker's findings: the bad records by
    (file, index), and for files with a framing error the number of records before it (the rest is unreadable)."""

    records: tuple[BadRecord, ...]
    readable: dict[str, int]

    @classmethod
    def from_checks(cls, checks: Iterable[FileCheck]) -> "RecordSkips":
        checks = list(checks)
        return cls(records=tuple(record for check in checks for record in check.bad),
                   readable={check.path: check.readable for check in checks if check.framing_error})

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class InputSpec:
    """Everything one input pipeline needs, read from a pipeline.config (see input_spec)."""

    reader: str  # the config field the records come from, for messages
    record_files: tuple[str, ...]
    label_map: label_maps.LabelMap | None
    label_map_path: str
    num_classes: int
    resizer: FixedShapeResizer
    batch_size: int
    max_boxes: int
    training: bool  # augment, drop the last partial batch, leave out the string labels
    shuffle: bool
    shuffle_buffer_size: int
    num_epochs: int  # 0 repeats forever
    augmentation: Step | None
    skips: RecordSkips | None = None  # records to leave out (None: read every record)


def record_files(reader: pipeline_pb2.InputReader, field: str) -> tuple[str, ...]:
    """The files matched by the reader's input_path globs (relative paths from the working directory)."""
    patterns = list(reader.tf_record_input_reader.input_path)
    if not patterns:
        raise TfodkitError(f"{field}.tf_record_input_reader.input_path: no TFRecord files given")
    files: list[str] = []
    for index, pattern in enumerate(patterns):
        matched = sorted(path for path in glob.glob(str(Path(pattern).expanduser())) if Path(path).is_file())
        if not matched:
            raise TfodkitError(f"{field}.tf_record_input_reader.input_path[{index}]: no files match {pattern!r}")
        files.extend(path for path in matched if path not in files)
    return tuple(files)


def _train_max_boxes(config: pipeline_pb2.TrainEvalPipelineConfig) -> int:
    """The reader's max_number_of_boxes (what the OD API's TF2 inputs pad to), or train_config's when only that
    one is written; both written with different values is an error."""
    reader, train = config.train_input_reader, config.train_config
    if reader.HasField("max_number_of_boxes") and train.HasField("max_number_of_boxes"):
        if reader.max_number_of_boxes != train.max_number_of_boxes:
            raise TfodkitError(
                f"train_input_reader.max_number_of_boxes ({reader.max_number_of_boxes}) and "
                f"train_config.max_number_of_boxes ({train.max_number_of_boxes}) disagree; write one of them"
            )
    if train.HasField("max_number_of_boxes") and not reader.HasField("max_number_of_boxes"):
        return train.max_number_of_boxes
    return reader.max_number_of_boxes


def _label_map(reader: pipeline_pb2.InputReader, field: str, num_classes: int) -> label_maps.LabelMap | None:
    if not reader.label_map_path:
        return None
    labels = label_maps.load(reader.label_map_path)
    if labels.num_classes > num_classes:
        raise TfodkitError(
            f"{field}.label_map_path: {reader.label_map_path} has class ids up to {labels.num_classes} but "
            f"model.ssd.num_classes is {num_classes}"
        )
    return labels


def input_spec(
    config: pipeline_pb2.TrainEvalPipelineConfig,
    split: str,
    *,
    training: bool | None = None,
    batch_size: int | None = None,
    skips: RecordSkips | None = None,
) -> InputSpec:
    """The pipeline for split "train" (train_input_reader, train_config) or "eval" (eval_input_reader[0],
    eval_config). `training` (default: split == "train") switches augmentation on; `batch_size` overrides
    the config's; `skips` leaves bad records out."""
    training = split == "train" if training is None else training
    if split == "train":
        field, reader = "train_input_reader", config.train_input_reader
        batch, max_boxes = config.train_config.batch_size, _train_max_boxes(config)
    elif split == "eval":
        if not config.eval_input_reader:
            raise TfodkitError("eval_input_reader: the config has no evaluation reader")
        field, reader = "eval_input_reader[0]", config.eval_input_reader[0]
        batch, max_boxes = config.eval_config.batch_size, reader.max_number_of_boxes
    else:
        raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
    if max_boxes < 1:
        raise TfodkitError(f"{field}.max_number_of_boxes: must be at least 1, got {max_boxes}")
    num_classes = config.model.ssd.num_classes
    augmentation = None
    if training and config.train_config.data_augmentation_options:
        augmentation = build_augmentation(config.train_config.data_augmentation_options)
    return InputSpec(
        reader=field,
        record_files=record_files(reader, field),
        label_map=_label_map(reader, field, num_classes),
        label_map_path=reader.label_map_path,
        num_classes=num_classes,
        resizer=image_resizer(config.model.ssd),
        batch_size=batch if batch_size is None else batch_size,
        max_boxes=max_boxes,
        training=training,
        shuffle=reader.shuffle,
        shuffle_buffer_size=reader.shuffle_buffer_size,
        num_epochs=reader.num_epochs,
        augmentation=augmentation,
        skips=skips,
    )


def _checked_classes(spec: InputSpec, decoded: dict[str, tf.Tensor]) -> tf.Tensor:
    """The decoded class ids, after asserting that each object has a known class in 1..num_classes."""
    classes = decoded["classes"]
    where = tf.strings.join([spec.reader, ": image ", decoded["filename"], " (source_id ", decoded["source_id"], ")"])
    counts_match = tf.size(classes) == tf.shape(decoded["boxes"])[0]
    count_check = tf.debugging.Assert(counts_match, [tf.strings.join([
        where, ": ", tf.strings.as_string(tf.shape(decoded["boxes"])[0]), " boxes but ",
        tf.strings.as_string(tf.size(classes)), " class ids (no image/object/class/text or class/label)"])])
    if spec.label_map is None:
        unknown = ""
        known = tf.fill(tf.shape(classes), True)
    else:
        unknown = tf.strings.reduce_join(tf.boolean_mask(decoded["class_text"], classes < 0), separator=", ")
        known = classes >= 0
    bad_ids = tf.strings.reduce_join(tf.strings.as_string(tf.boolean_mask(classes, known & (
        (classes < 1) | (classes > spec.num_classes)))), separator=", ")
    known_check = tf.debugging.Assert(tf.reduce_all(known), [tf.strings.join([
        where, ": class name(s) [", unknown, "] not in the label map ", spec.label_map_path])])
    range_check = tf.debugging.Assert(tf.reduce_all(~known | ((classes >= 1) & (classes <= spec.num_classes))), [
        tf.strings.join([where, ": class id(s) [", bad_ids, "] outside 1..",
                         str(spec.num_classes), " (model.ssd.num_classes)"])])
    with tf.control_dependencies([count_check, known_check, range_check]):
        return tf.identity(classes)


def user_error(error: tf.errors.InvalidArgumentError) -> TfodkitError | None:
    """The TfodkitError for a failed input check raised while iterating a dataset (None for other errors)."""
    found = _CHECK_FAILED.search(error.message)
    return TfodkitError(found.group(1)) if found else None


def _pad(values: tf.Tensor, length: int) -> tf.Tensor:
    """First `length` rows of `values`, zero-padded up to `length`."""
    values = values[:length]
    padding = [[0, length - tf.shape(values)[0]]] + [[0, 0]] * (len(values.shape) - 1)
    return tf.pad(values, padding)


def _element(spec: InputSpec, decoder: ExampleDecoder, serialized: tf.Tensor,
             seed: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    decoded = decoder(serialized)
    classes = _checked_classes(spec, decoded)
    image = tf.ensure_shape(decoded["image"], [None, None, 3])
    sample = Sample(tf.cast(image, tf.float32), decoded["boxes"], tf.range(tf.size(classes)))
    if spec.augmentation is not None:
        sample = spec.augmentation(sample, seed)
    height, width = spec.resizer.height, spec.resizer.width
    resized = tf.ensure_shape(spec.resizer(sample.image[tf.newaxis])[0], [height, width, 3])
    count = tf.size(sample.box_index)
    kept = tf.minimum(count, spec.max_boxes)
    features = {"image": resized, "true_image_shape": tf.constant([height, width, 3], tf.int32)}
    labels = {
        "boxes": tf.ensure_shape(_pad(sample.boxes, spec.max_boxes), [spec.max_boxes, 4]),
        "classes": tf.ensure_shape(_pad(tf.gather(classes, sample.box_index), spec.max_boxes), [spec.max_boxes]),
        "weights": tf.sequence_mask(kept, spec.max_boxes, tf.float32),
        "difficult": tf.ensure_shape(
            _pad(tf.gather(decoded["difficult"], sample.box_index), spec.max_boxes), [spec.max_boxes]),
        "num_boxes": kept,
        "num_boxes_over_limit": count - kept,
    }
    if not spec.training:
        labels["source_id"] = decoded["source_id"]
        labels["filename"] = decoded["filename"]
        labels["original_image_spatial_shape"] = tf.shape(image)[:2]
    return features, labels


def _file_reader(spec: InputSpec) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """filename -> its serialized records, without the spec's skipped ones."""
    if not spec.skips:
        return tf.data.TFRecordDataset
    limits = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant([""] + list(spec.skips.readable)), tf.constant([-1] + list(spec.skips.readable.values()),
                                                                   tf.int64)), default_value=-1)
    bad_keys = [f"{record.path}#{record.index}" for record in spec.skips.records] or [""]
    bad = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(bad_keys), tf.ones([len(bad_keys)], tf.int64)), default_value=0)

    def read(filename: tf.Tensor) -> tf.data.Dataset:
        records = tf.data.TFRecordDataset(filename).take(limits.lookup(filename)).enumerate()
        kept = records.filter(lambda index, _: bad.lookup(
            tf.strings.join([filename, "#", tf.strings.as_string(index)])) == 0)
        return kept.map(lambda _, record: record)

    return read


def count_records(spec: InputSpec) -> int:
    """How many records the spec's files give (its skipped records left out)."""
    records = tf.data.Dataset.from_tensor_slices(list(spec.record_files)).flat_map(_file_reader(spec))
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())


def build_dataset(spec: InputSpec, seed: int | None = None) -> tf.data.Dataset:
    """Interleaved parallel reads, shuffle, repeat, parallel decode + augment + resize + pad, batch, prefetch.

    Element: ({"image": float32 [B, H, W, 3] resized, pixel values in [0, 255] (SSD.preprocess scales them),
    "true_image_shape": int32 [B, 3]}, {"boxes": float32 [B, M, 4] normalised ymin, xmin, ymax, xmax,
    "classes": int32 [B, M] label map ids, "weights": float32 [B, M], "difficult": bool [B, M], "num_boxes":
    int32 [B], "num_boxes_over_limit": int32 [B]}). When spec.training is false the labels also hold
    "source_id", "filename" (string [B]) and "original_image_spatial_shape" (int32 [B, 2]), and the last batch
    may be partial.

    Policies:
    - Class ids come from image/object/class/text through the reader's label map (class/label only where the
      text is absent). An object whose class is not in the label map, or whose id is outside 1..num_classes,
      stops the pipeline with an InvalidArgumentError naming the reader, the image file and the class
      (user_error turns it into a TfodkitError): make-tfrecords never writes such records, so they mean a
      mismatched label map, not data to drop quietly.
    - An image with more than max_boxes boxes keeps its first max_boxes (the OD API's rule);
      labels["num_boxes_over_limit"] counts the boxes left out so the training loop can report them.
    - Padding rows have zero boxes, class 0, weight 0 and difficult false.
    - Records in spec.skips are left out (`--skip-bad-records`; the trainer lists them).
    - With a `seed`, file order, shuffling and every augmentation draw are reproducible (and the output order
      deterministic); without one they differ run to run.
    """
    deterministic = seed is not None or not spec.shuffle
    files = tf.data.Dataset.from_tensor_slices(list(spec.record_files))
    if spec.shuffle:
        files = files.shuffle(len(spec.record_files), seed=seed)
    records = files.interleave(
        _file_reader(spec),
        cycle_length=min(len(spec.record_files), MAX_PARALLEL_FILES),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if spec.shuffle:
        records = records.shuffle(spec.shuffle_buffer_size, seed=seed)
    records = records.repeat(spec.num_epochs or None)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    decoder = ExampleDecoder(spec.label_map)
    dataset = tf.data.Dataset.zip(records, seeds).map(
        lambda serialized, element_seed: _element(spec, decoder, serialized, element_seed),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.batch(spec.batch_size, drop_remainder=spec.training)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def train_dataset(config: pipeline_pb2.TrainEvalPipelineConfig, seed: int | None = None,
                  skips: RecordSkips | None = None) -> tf.data.Dataset:
    """The training pipeline of a config: augmented, shuffled as configured, full batches only."""
    return build_dataset(input_spec(config, "train", skips=skips), seed)


def eval_dataset(config: pipeline_pb2.TrainEvalPipelineConfig, batch_size: int | None = None) -> tf.data.Dataset:
    """The evaluation pipeline of a config: no augmentation, every example once per epoch, with string ids."""
    return build_dataset(input_spec(config, "eval", batch_size=batch_size))
