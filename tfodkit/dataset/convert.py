"""LabelImg folder -> sharded TFRecords, label map and manifest: checks every input, then writes atomically."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from tfodkit import __version__
from tfodkit import label_map as label_maps
from tfodkit.dataset import heap
from tfodkit.dataset import split as splitting
from tfodkit.dataset.images import IMAGE_EXTENSIONS, ImageInfo, transposed_size
from tfodkit.dataset.labelimg_xml import AnnotatedObject, Annotation
from tfodkit.dataset.matching import ImageIndex, find_image_files, find_xml_files
from tfodkit.dataset.parallel import WorkerPool
from tfodkit.dataset.records import Probe, RecordTask, build_record, probe_image, probe_xml
from tfodkit.dataset.shards import StagedOutput, shard_count
from tfodkit.dataset.tf_example import ObjectBox
from tfodkit.errors import TfodkitError

DEFAULT_SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}
_RECORD_OVERHEAD = 1024  # bytes of Example fields around the image, for shard sizing


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """Inputs, outputs and policies of one conversion (the CLI flags, one field each)."""

    images: Path
    annotations: Path
    out: Path
    label_map: Path | None = None
    skip_unknown: bool = False
    split: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPLIT))
    split_files: dict[str, Path] | None = None
    seed: int = 0
    shards: int | None = None
    workers: int = 1
    skip_bad: bool = False
    drop_negatives: bool = False
    unlabelled_as_negatives: bool = False
    exif_transpose: bool = False

    def as_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if self.split_files:
            values["split_files"] = {name: str(path) for name, path in self.split_files.items()}
            values["split"] = None  # the lists decide
        return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


@dataclasses.dataclass(frozen=True)
class Finding:
    """A problem or note about one input file (and line)."""

    file: str  # relative to the dataset folder it belongs to
    message: str
    line: int | None = None
    shown: str = ""  # the path as the user can open it

    def __str__(self) -> str:
        where = self.shown or self.file
        return f"{where}:{self.line}: {self.message}" if self.line else f"{where}: {self.message}"

    def as_json(self, key: str = "message") -> dict[str, Any]:
        return {"file": self.file, "line": self.line, key: self.message}


class ConversionFailed(TfodkitError):
    """Strict mode found errors; nothing was written."""

    def __init__(self, errors: list[Finding], warnings: list[Finding]) -> None:
        lines = [f"{len(errors)} error(s); nothing was written (fix them, or --skip-bad to convert the rest):"]
        lines += [f"  {finding}" for finding in errors]
        super().__init__("\n".join(lines))
        self.errors = errors
        self.warnings = warnings


@dataclasses.dataclass
class _Image:
    """One image that will be converted."""

    file: str
    xml: str | None
    info: ImageInfo
    objects: list[ObjectBox]
    split: str = ""
    order: int = 0  # position inside its split
    source_id: str = ""


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What was written and the manifest describing it."""

    manifest: dict[str, Any]
    written: list[Path]
    warnings: list[Finding]
    skipped: list[Finding]


class _Findings:
    def __init__(self, options: ConvertOptions) -> None:
        self.skip_bad = options.skip_bad
        self.roots = {".xml": options.annotations, **{ext: options.images for ext in IMAGE_EXTENSIONS}}
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.excluded: list[Finding] = []

    def _finding(self, file: str, message: str, line: int | None) -> Finding:
        root = self.roots.get(PurePosixPath(file).suffix.lower())
        return Finding(file, message, line, str(root / file) if root else file)

    def error(self, file: str, message: str, line: int | None = None) -> None:
        self.errors.append(self._finding(file, message, line))

    def warn(self, file: str, message: str, line: int | None = None) -> None:
        self.warnings.append(self._finding(file, message, line))

    def exclude(self, file: str, message: str, line: int | None = None) -> None:
        self.excluded.append(self._finding(file, message, line))

    @property
    def skipped(self) -> list[Finding]:
        return self.errors + self.excluded if self.skip_bad else self.excluded


def _probe_all(pool: WorkerPool, paths: list[Path], function: Callable[[Path], Probe]) -> list[Probe]:
    return list(pool.map(function, paths, chunk_size=32))


def _check_folders(options: ConvertOptions) -> None:
    for name, folder in (("annotations", options.annotations), ("images", options.images)):
        if not folder.is_dir():
            raise TfodkitError(f"{name} folder {folder} does not exist or is not a folder")


def _no_xml_error(options: ConvertOptions, image_files: list[str]) -> TfodkitError:
    detail = (f"{len(image_files)} image(s) but no annotations: label them in LabelImg (PascalVOC format) first"
              if image_files else "the folder is empty")
    return TfodkitError(f"no LabelImg XML files (*.xml) in {options.annotations}: {detail}")


def _box_objects(xml: str, annotation: Annotation, info: ImageInfo, options: ConvertOptions,
                 ids: dict[str, int] | None, findings: _Findings) -> tuple[list[ObjectBox], int]:
    """Normalised boxes of one annotation; returns (kept, number rejected as errors)."""
    width, height = transposed_size(info) if options.exif_transpose else (info.width, info.height)
    kept: list[ObjectBox] = []
    rejected = 0
    for obj in annotation.objects:
        problem = _box_problem(obj)
        if problem:
            findings.error(xml, f"object {obj.name!r} rejected: {problem}", obj.line)
            rejected += 1
            continue
        xmin, ymin = max(obj.xmin, 0.0), max(obj.ymin, 0.0)
        xmax, ymax = min(obj.xmax, float(width)), min(obj.ymax, float(height))
        if xmin >= xmax or ymin >= ymax:
            findings.error(xml, f"object {obj.name!r} rejected: box ({obj.xmin:g}, {obj.ymin:g}, {obj.xmax:g}, "
                                f"{obj.ymax:g}) lies outside the {width}x{height} image", obj.line)
            rejected += 1
            continue
        if (xmin, ymin, xmax, ymax) != (obj.xmin, obj.ymin, obj.xmax, obj.ymax):
            findings.warn(xml, f"object {obj.name!r}: box ({obj.xmin:g}, {obj.ymin:g}, {obj.xmax:g}, {obj.ymax:g}) "
                               f"extends outside the {width}x{height} image; clipped", obj.line)
        if ids is not None and obj.name not in ids:
            message = f"object {obj.name!r}: class not in the label map {options.label_map}"
            if options.skip_unknown:
                findings.exclude(xml, f"{message} (--skip-unknown)", obj.line)
            else:
                findings.error(xml, f"{message} (add it, or --skip-unknown)", obj.line)
                rejected += 1
            continue
        # label 0 until the label map is final (it may be generated from the names kept)
        kept.append(ObjectBox(name=obj.name, label=0, xmin=xmin / width, ymin=ymin / height,
                              xmax=xmax / width, ymax=ymax / height, difficult=obj.difficult,
                              truncated=obj.truncated, view=obj.pose))
    return kept, rejected


def _box_problem(obj: AnnotatedObject) -> str | None:
    if obj.xmin >= obj.xmax:
        return f"xmin {obj.xmin:g} >= xmax {obj.xmax:g}"
    if obj.ymin >= obj.ymax:
        return f"ymin {obj.ymin:g} >= ymax {obj.ymax:g}"
    return None


def _size_warnings(image: str, xml: str, annotation: Annotation, info: ImageInfo, options: ConvertOptions,
                   findings: _Findings) -> None:
    real = transposed_size(info) if options.exif_transpose else (info.width, info.height)
    if info.orientation != 1:
        if options.exif_transpose:
            findings.warn(image, f"EXIF orientation {info.orientation}: pixels rotated upright (--exif-transpose); "
                                 "boxes taken as drawn on the rotated image")
        else:
            findings.warn(image, f"EXIF orientation {info.orientation}: pixels are stored unrotated and boxes are "
                                 "taken on the stored pixels, as LabelImg draws them (use --exif-transpose for "
                                 "sets labelled in a tool that applies EXIF)")
    if annotation.width is None or annotation.height is None:
        return
    if (annotation.width, annotation.height) != real:
        hint = ""
        if (annotation.height, annotation.width) == real and info.orientation in (5, 6, 7, 8):
            hint = (" (the XML matches the EXIF-rotated size: labelled in a tool that applies EXIF? "
                    "see --exif-transpose)")
        findings.warn(xml, f"XML size {annotation.width}x{annotation.height} differs from the real image size "
                           f"{real[0]}x{real[1]} of {image}; the real size is used{hint}")


def _near_duplicate_names(images: list[_Image], findings: _Findings) -> None:
    spellings: dict[str, dict[str, str]] = {}
    for image in images:
        for obj in image.objects:
            spellings.setdefault(obj.name.strip().casefold(), {}).setdefault(obj.name, image.xml or image.file)
    for variants in spellings.values():
        if len(variants) > 1:
            names = ", ".join(f"{name!r} (e.g. {where})" for name, where in sorted(variants.items()))
            findings.warn("label map", f"class names differ only by case or surrounding spaces: {names}; "
                                       "likely a labelling mistake (they stay separate classes)")


def _duplicate_content(images: list[_Image], findings: _Findings) -> None:
    by_hash: dict[str, list[str]] = {}
    for image in images:
        by_hash.setdefault(image.info.sha256, []).append(image.file)
    for files in by_hash.values():
        if len(files) > 1:
            findings.warn(files[0], f"identical content (sha256) in {', '.join(files)}; kept in the same split")


def _assign_from_files(images: list[_Image], options: ConvertOptions, findings: _Findings) -> list[_Image]:
    assert options.split_files is not None
    by_key: dict[str, list[_Image]] = {}
    for image in images:
        path = PurePosixPath(image.file)
        for key in {image.file, path.name, path.stem}:
            by_key.setdefault(key, []).append(image)
    placed: dict[str, str] = {}  # image -> where it is listed
    for split, list_path in options.split_files.items():
        where = str(list_path)
        for number, entry in splitting.read_split_list(list_path):
            candidates = by_key.get(entry.replace("\\", "/"), [])
            if len(candidates) != 1:
                what = "matches no converted image" if not candidates else (
                    f"matches several images: {', '.join(image.file for image in candidates)}")
                findings.error(where, f"{entry!r} {what}", number)
                continue
            image = candidates[0]
            if image.file in placed:
                findings.error(where, f"{image.file} is already listed in {placed[image.file]}", number)
                continue
            placed[image.file] = f"{list_path}:{number}"
            image.split, image.order = split, len(placed)
    kept = []
    hash_split: dict[str, _Image] = {}
    for image in images:
        if image.file not in placed:
            findings.error(image.file, "not listed in any --split-files list")
            continue
        other = hash_split.setdefault(image.info.sha256, image)
        if other.split != image.split:
            findings.error(image.file, f"same content (sha256) as {other.file}, but listed in split "
                                       f"{image.split!r} while that is in {other.split!r}")
            continue
        kept.append(image)
    return kept


def _assign_splits(images: list[_Image], options: ConvertOptions, findings: _Findings) -> list[_Image]:
    if options.split_files is not None:
        return _assign_from_files(images, options, findings)
    items = [splitting.SplitItem(image.file, image.info.sha256, frozenset(obj.name for obj in image.objects))
             for image in images]
    by_file = {image.file: image for image in images}
    for split, files in splitting.stratified_split(items, options.split, options.seed).items():
        for order, file in enumerate(files):
            by_file[file].split, by_file[file].order = split, order
    return images


def _record_tasks(images: list[_Image], options: ConvertOptions) -> list[RecordTask]:
    return [RecordTask(path=options.images / image.file, info=image.info, filename=image.file,
                       source_id=image.source_id, objects=tuple(image.objects), exif_transpose=options.exif_transpose)
            for image in images]


def _framed_records(pool: WorkerPool, tasks: list[RecordTask]) -> Iterator[list[bytes]]:
    """Each task's framed record, in order. Records of images stored as they are take a read, a CRC and a few
    small byte strings: built here, which is cheaper than moving their bytes between processes; records that
    re-encode an image are built in the pool."""
    reencoded = pool.map(build_record, (task for task in tasks if task.reencodes), chunk_size=4)
    for task in tasks:
        yield next(reencoded) if task.reencodes else build_record(task)


def _collect(options: ConvertOptions, pool: WorkerPool, ids: dict[str, int] | None,
             findings: _Findings) -> tuple[list[_Image], dict[str, str]]:
    """Parse, match and check every input; returns the images to convert and each image file's sha256."""
    _check_folders(options)
    xml_files = find_xml_files(options.annotations)
    image_files = find_image_files(options.images)
    if not xml_files:
        raise _no_xml_error(options, image_files)
    xml_probes = dict(zip(xml_files, _probe_all(pool, [options.annotations / f for f in xml_files], probe_xml)))
    image_probes = dict(zip(image_files, _probe_all(pool, [options.images / f for f in image_files], probe_image)))
    hashes = {file: probe.info.sha256 for file, probe in image_probes.items() if probe.info is not None}

    index = ImageIndex(image_files)
    xmls_of: dict[str, list[str]] = {}
    for xml, probe in xml_probes.items():
        if probe.annotation is None:
            findings.error(xml, probe.error or "unreadable", probe.line)
            guessed = index.by_stem.get((str(PurePosixPath(xml).parent), PurePosixPath(xml).stem), [])
            for image in guessed:
                xmls_of.setdefault(image, []).append(xml)
            continue
        match = index.match(xml, probe.annotation.filename)
        if match.image is None:
            findings.error(xml, match.problem or "no image")
            continue
        if match.note:
            findings.warn(xml, match.note)
        xmls_of.setdefault(match.image, []).append(xml)

    images: list[_Image] = []
    for file in image_files:
        probe, xmls = image_probes[file], xmls_of.get(file, [])
        good_xmls = [xml for xml in xmls if xml_probes[xml].annotation is not None]
        if len(xmls) > 1:
            findings.error(file, f"described by {len(xmls)} XML files: {', '.join(xmls)}; keep one")
            continue
        if xmls and not good_xmls:
            continue  # its XML's error is already listed
        if probe.info is None:
            if xmls:
                findings.error(file, probe.error or "unreadable")
            else:
                findings.exclude(file, f"unlabelled and unreadable: {probe.error}")
            continue
        if not xmls:
            if options.unlabelled_as_negatives:
                images.append(_Image(file, None, probe.info, []))
            else:
                findings.exclude(file, "unlabelled: no XML describes this image (--unlabelled-as-negatives "
                                       "to use it as an image without objects)")
            continue
        xml = good_xmls[0]
        annotation = xml_probes[xml].annotation
        assert annotation is not None
        _size_warnings(file, xml, annotation, probe.info, options, findings)
        objects, rejected = _box_objects(xml, annotation, probe.info, options, ids, findings)
        if rejected and not objects:
            findings.exclude(file, f"all {rejected} object(s) of {xml} were rejected; the image is left out "
                                   "rather than used as an image without objects")
            continue
        if not annotation.objects and options.drop_negatives:
            findings.exclude(file, f"no objects in {xml} (--drop-negatives)")
            continue
        images.append(_Image(file, xml, probe.info, objects))
    return images, hashes


def _generated_label_map(images: list[_Image], options: ConvertOptions) -> label_maps.LabelMap:
    names = [obj.name for image in images for obj in image.objects]
    if not names:
        raise TfodkitError(f"no objects in any annotation under {options.annotations}: nothing to learn from")
    return label_maps.from_class_names(names)


def _split_summary(images: list[_Image], split: str, shards: list[str], num_bytes: int) -> dict[str, Any]:
    members = [image for image in images if image.split == split]
    per_class: dict[str, int] = {}
    for image in members:
        for obj in image.objects:
            per_class[obj.name] = per_class.get(obj.name, 0) + 1
    return {
        "images": len(members),
        "negatives": sum(1 for image in members if not image.objects),
        "boxes": sum(per_class.values()),
        "boxes_per_class": dict(sorted(per_class.items())),
        "shards": shards,
        "bytes": num_bytes,
    }


def convert(options: ConvertOptions) -> ConversionResult:
    """Convert a LabelImg dataset; strict mode raises ConversionFailed listing every error, writing nothing."""
    findings = _Findings(options)
    given = label_maps.load(options.label_map) if options.label_map else None
    heap.keep_large_buffers()  # every image is read twice: once to check and hash it, once to write it
    with WorkerPool(options.workers, initializer=heap.keep_large_buffers) as pool:
        images, hashes = _collect(options, pool, given.ids if given else None, findings)
        _near_duplicate_names(images, findings)
        _duplicate_content(images, findings)
        images = _assign_splits(images, options, findings)
        if findings.errors and not options.skip_bad:
            raise ConversionFailed(findings.errors, findings.warnings)
        if not images:
            raise TfodkitError("no image is left to convert; see the skipped inputs:\n"
                               + "\n".join(f"  {finding}" for finding in findings.skipped))
        label_map = given or _generated_label_map(images, options)
        label_map_source = str(options.label_map) if given else "generated from the class names found"
        for image in images:
            image.objects = [dataclasses.replace(obj, label=label_map.ids[obj.name]) for obj in image.objects]
        for number, image in enumerate(sorted(images, key=lambda image: image.file), start=1):
            image.source_id = str(number)
        split_names = list(options.split_files or options.split)
        splits: dict[str, dict[str, Any]] = {}
        with StagedOutput(options.out) as staged:
            for split in split_names:
                members = sorted((image for image in images if image.split == split), key=lambda image: image.order)
                estimate = sum(image.info.num_bytes + _RECORD_OVERHEAD for image in members)
                writer = None
                if not members:
                    findings.warn(f"split {split!r}", "no images: the dataset is too small for its fraction")
                if members:
                    writer = staged.shard_writer(split, shard_count(estimate, len(members), options.shards))
                    for framed in _framed_records(pool, _record_tasks(members, options)):
                        writer.write(framed)
                splits[split] = _split_summary(images, split, writer.names if writer else [],
                                               writer.bytes if writer else 0)
            manifest = _manifest(options, images, splits, label_map, label_map_source, hashes, findings)
            staged.write_text("label_map.pbtxt", label_map.to_text())
            staged.write_text("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            written = staged.commit()
    return ConversionResult(manifest, written, findings.warnings, findings.skipped)


def _manifest(options: ConvertOptions, images: list[_Image], splits: dict[str, dict[str, Any]],
              label_map: label_maps.LabelMap, label_map_source: str, hashes: dict[str, str],
              findings: _Findings) -> dict[str, Any]:
    return {
        "tfodkit_version": __version__,
        "options": options.as_json(),
        "label_map": {"file": "label_map.pbtxt", "source": label_map_source, "classes": label_map.ids},
        "splits": splits,
        "images": [
            {"file": image.file, "xml": image.xml, "sha256": image.info.sha256, "split": image.split,
             "source_id": image.source_id, "format": image.info.file_format.lower(),
             "width": image.info.width, "height": image.info.height, "exif_orientation": image.info.orientation,
             "reencoded": image.info.reencode or ("rotated upright (--exif-transpose) and re-encoded"
                                                   if options.exif_transpose and image.info.orientation != 1
                                                   else None),
             "boxes": len(image.objects)}
            for image in sorted(images, key=lambda image: int(image.source_id))
        ],
        "skipped": [dict(finding.as_json("reason"), sha256=hashes.get(finding.file)) for finding in findings.skipped],
        "warnings": [finding.as_json() for finding in findings.warnings],
        "source_sha256": dict(sorted(hashes.items())),
    }
