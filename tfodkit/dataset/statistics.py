"""Per-split class counts, boxes per image and box geometry of a LabelImg folder or of TFRecords, as tables."""

from __future__ import annotations

import collections
import dataclasses
from array import array
from pathlib import Path
from typing import Sequence

import numpy as np

from tfodkit import label_map as label_maps
from tfodkit.dataset import record_files
from tfodkit.dataset.labelimg_xml import read_annotation
from tfodkit.errors import TfodkitError, op_error_text
from tfodkit.label_map import LabelMap
from tfodkit.text_table import format_table

SPLIT_ORDER = ("train", "val", "test")
LABELIMG_SPLIT = "all"  # XML files directly in the folder; those in sub-folders are split by sub-folder
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
MAX_HISTOGRAM_COLUMN = 10  # images with more boxes share the last column


@dataclasses.dataclass
class SplitStatistics:
    """Counts and box measurements of one split; geometry is relative to each image's size."""

    name: str
    images: int = 0
    images_without_objects: int = 0
    invalid_boxes: int = 0  # xmax <= xmin or ymax <= ymin: counted per class, left out of the geometry
    boxes_per_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    images_per_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    boxes_per_image: array = dataclasses.field(default_factory=lambda: array("l"))
    widths: array = dataclasses.field(default_factory=lambda: array("d"))
    heights: array = dataclasses.field(default_factory=lambda: array("d"))
    aspect_ratios: array = dataclasses.field(default_factory=lambda: array("d"))  # width / height in pixels

    @property
    def boxes(self) -> int:
        return sum(self.boxes_per_class.values())

    def add_image(self, width: int, height: int, names: Sequence[str], boxes: np.ndarray) -> None:
        """One image of `width` x `height` pixels; `boxes` is [N, 4] normalised xmin, ymin, xmax, ymax."""
        self.images += 1
        self.boxes_per_image.append(len(names))
        if not names:
            self.images_without_objects += 1
        self.boxes_per_class.update(names)
        self.images_per_class.update(set(names))
        box_widths = boxes[:, 2] - boxes[:, 0]
        box_heights = boxes[:, 3] - boxes[:, 1]
        valid = (box_widths > 0) & (box_heights > 0)
        self.invalid_boxes += int(np.count_nonzero(~valid))
        self.widths.extend(box_widths[valid].tolist())
        self.heights.extend(box_heights[valid].tolist())
        self.aspect_ratios.extend((box_widths[valid] * width / (box_heights[valid] * height)).tolist())


@dataclasses.dataclass
class DatasetStatistics:
    """All splits of one dataset, and the order in which to list its classes."""

    source: str
    kind: str  # "LabelImg XML" or "TFRecord"
    splits: dict[str, SplitStatistics]
    class_order: list[str]


def _ordered_splits(splits: dict[str, SplitStatistics]) -> dict[str, SplitStatistics]:
    known = [name for name in SPLIT_ORDER if name in splits]
    return {name: splits[name] for name in known + sorted(set(splits) - set(known))}


def _class_order(splits: dict[str, SplitStatistics], label_map: LabelMap | None) -> list[str]:
    seen = set().union(*(s.boxes_per_class.keys() for s in splits.values())) if splits else set()
    mapped = sorted(label_map.ids, key=label_map.ids.get) if label_map else []
    return mapped + sorted(seen - set(mapped))


def labelimg_statistics(folder: Path) -> DatasetStatistics:
    """Statistics of the LabelImg XML files in `folder` (sizes from the XML's <size>)."""
    xml_files = sorted(folder.rglob("*.xml"))
    if not xml_files:
        raise TfodkitError(f"{folder}: no LabelImg .xml files (and no TFRecord files) in this folder")
    splits: dict[str, SplitStatistics] = {}
    for xml_file in xml_files:
        annotation = read_annotation(xml_file)
        if not annotation.width or not annotation.height:
            raise TfodkitError(
                f"{xml_file}: <size> has no width/height; box sizes relative to the image need them "
                "(make-tfrecords reads the real size from the image)"
            )
        relative = xml_file.parent.relative_to(folder).as_posix()
        name = LABELIMG_SPLIT if relative == "." else relative
        split = splits.setdefault(name, SplitStatistics(name))
        scale = np.array([annotation.width, annotation.height] * 2, dtype=np.float64)
        boxes = np.array([[o.xmin, o.ymin, o.xmax, o.ymax] for o in annotation.objects], dtype=np.float64)
        split.add_image(annotation.width, annotation.height, [o.name for o in annotation.objects],
                        boxes.reshape(-1, 4) / scale)
    return DatasetStatistics(str(folder), "LabelImg XML", _ordered_splits(splits), _class_order(splits, None))


def _values_per_row(sparse: object, rows: int) -> list[np.ndarray]:
    """The values of a batched VarLen feature, one array per record (values are stored row by row)."""
    counts = np.bincount(sparse.indices.numpy()[:, 0], minlength=rows)
    return np.split(sparse.values.numpy(), np.cumsum(counts)[:-1])


def _record_file_statistics(path: Path, split: SplitStatistics, names_by_id: dict[int, str]) -> None:
    # Imported here so that a library caller reading a LabelImg folder never loads TensorFlow (the CLI loads it at
    # start-up anyway, inside its quiet start).
    import tensorflow as tf

    from tfodkit.dataset import tf_example as keys
    from tfodkit.dataset.example_decoder import FEATURE_SPEC

    box_keys = (keys.BBOX_XMIN, keys.BBOX_YMIN, keys.BBOX_XMAX, keys.BBOX_YMAX)
    spec = {key: FEATURE_SPEC[key] for key in (keys.IMAGE_WIDTH, keys.IMAGE_HEIGHT, keys.CLASS_TEXT,
                                               keys.CLASS_LABEL, *box_keys)}
    dataset = tf.data.TFRecordDataset(str(path)).batch(256).map(lambda batch: tf.io.parse_example(batch, spec))
    record = 0
    try:
        for parsed in dataset:
            widths, heights = parsed[keys.IMAGE_WIDTH].numpy(), parsed[keys.IMAGE_HEIGHT].numpy()
            rows = len(widths)
            coordinates = [_values_per_row(parsed[key], rows) for key in box_keys]
            texts = _values_per_row(parsed[keys.CLASS_TEXT], rows)
            labels = _values_per_row(parsed[keys.CLASS_LABEL], rows)
            for row in range(rows):
                counts = {len(c[row]) for c in coordinates}
                text, label = texts[row], labels[row]
                if len(counts) > 1 or (len(text) and len(text) != len(coordinates[0][row])) or (
                    not len(text) and len(label) != len(coordinates[0][row])
                ):
                    raise TfodkitError(
                        f"{path}: record #{record + row}: box coordinate and class lists differ in length"
                    )
                if len(text):
                    names = [value.decode("utf-8", "replace") for value in text]
                else:
                    names = [names_by_id.get(int(value), f"id {int(value)}") for value in label]
                boxes = np.stack([c[row] for c in coordinates], axis=1).astype(np.float64)
                split.add_image(int(widths[row]), int(heights[row]), names, boxes)
            record += rows
    except tf.errors.OpError:
        raise TfodkitError(_unreadable_record(path, record, spec)) from None


def _unreadable_record(path: Path, start: int, spec: dict) -> str:
    """Which record stopped the batched reader (at or after record #start), and why, as one line."""
    import tensorflow as tf

    from tfodkit.dataset.record_check import RecordChecker

    framing = RecordChecker().check_file(path).framing_error
    if framing is not None:
        return framing.line()
    for index, data in enumerate(tf.data.TFRecordDataset(str(path)).skip(start), start):
        try:
            tf.io.parse_example(tf.reshape(data, [1]), spec)
        except tf.errors.InvalidArgumentError as error:
            return f"{path} record #{index}: not a tf.train.Example with the OD API's keys ({op_error_text(error)})"
    return f"{path}: cannot be read after record #{start}"


def record_statistics(files: list[Path], label_map: LabelMap | None) -> DatasetStatistics:
    """Statistics of TFRecord files; the split is the file-name prefix (train-00000-of-00004 -> train)."""
    names_by_id = label_map.names_by_id() if label_map else {}
    splits: dict[str, SplitStatistics] = {}
    for path in files:
        name = record_files.split_name(path)
        _record_file_statistics(path, splits.setdefault(name, SplitStatistics(name)), names_by_id)
    source = str(files[0].parent) if len({f.parent for f in files}) == 1 else ", ".join(map(str, files))
    return DatasetStatistics(source, "TFRecord", _ordered_splits(splits), _class_order(splits, label_map))


def collect(source: str, label_map_path: str | None = None) -> DatasetStatistics:
    """Statistics of a LabelImg folder, or of TFRecords named by a file, folder or glob."""
    path = Path(source)
    if path.is_dir() and not any(record_files.is_record_file(p) for p in path.iterdir()):
        if label_map_path:
            raise TfodkitError("--label-map applies to TFRecords; a LabelImg folder names its classes in the XML")
        return labelimg_statistics(path)
    files = record_files.find_records(source)
    map_path = Path(label_map_path) if label_map_path else record_files.label_map_beside(files)
    return record_statistics(files, label_maps.load(map_path) if map_path else None)


def _quantile_cells(values: array) -> list[str]:
    if not len(values):
        return ["-"] * len(QUANTILES)
    return [f"{q:.3f}" for q in np.quantile(np.asarray(values), QUANTILES)]


def format_report(stats: DatasetStatistics) -> str:
    """Readable tables: overview, boxes-per-image histogram, classes per split, box geometry quantiles."""
    splits = list(stats.splits.values())
    overview = [
        [s.name, s.images, s.boxes, s.images_without_objects, f"{np.mean(s.boxes_per_image):.2f}" if s.images else "-",
         max(s.boxes_per_image, default=0), s.invalid_boxes]
        for s in splits
    ]
    overview.append(["total", sum(s.images for s in splits), sum(s.boxes for s in splits),
                     sum(s.images_without_objects for s in splits), "", "", sum(s.invalid_boxes for s in splits)])
    tables = [format_table(
        ["split", "images", "boxes", "images without objects", "boxes/image", "max", "invalid boxes"], overview,
        title=f"{stats.kind} dataset: {stats.source}",
    )]

    top = min(MAX_HISTOGRAM_COLUMN, max((max(s.boxes_per_image, default=0) for s in splits), default=0))
    histogram = []
    for s in splits:
        counts = np.bincount(np.minimum(np.asarray(s.boxes_per_image, dtype=np.int64), top), minlength=top + 1)
        histogram.append([s.name, *counts.tolist()])
    labels = [str(n) for n in range(top)] + [f"{top}+" if top == MAX_HISTOGRAM_COLUMN else str(top)]
    tables.append(format_table(["split", *labels], histogram, title="images by number of boxes"))

    total_boxes = max(1, sum(s.boxes for s in splits))
    class_rows = []
    for name in stats.class_order:
        boxes = sum(s.boxes_per_class[name] for s in splits)
        cells = [f"{s.boxes_per_class[name]} ({s.images_per_class[name]})" for s in splits]
        class_rows.append([name, *cells, boxes, f"{100.0 * boxes / total_boxes:.1f}"])
    tables.append(format_table(["class", *(s.name for s in splits), "total boxes", "%"], class_rows,
                               title="boxes per class (images containing the class)"))

    geometry = []
    for s in splits:
        sizes = array("d", np.sqrt(np.asarray(s.widths) * np.asarray(s.heights)).tolist())
        for measure, values in (("width", s.widths), ("height", s.heights), ("sqrt(area)", sizes),
                                ("aspect w/h", s.aspect_ratios)):
            geometry.append([s.name, measure, *_quantile_cells(values)])
    tables.append(format_table(
        ["split", "measure", "min", "5%", "25%", "50%", "75%", "95%", "max"], geometry,
        title="box geometry relative to the image (aspect ratio in pixels)",
    ))
    return "\n\n".join(tables)
