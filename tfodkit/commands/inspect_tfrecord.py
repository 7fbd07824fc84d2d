"""`tfodkit inspect-tfrecord`: decode records as training will, print and draw them, or check every record."""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

from tfodkit import label_map as label_maps
from tfodkit.dataset import record_files
from tfodkit.dataset.draw import draw_boxes
from tfodkit.dataset.record_check import RecordChecker
from tfodkit.dataset.record_reader import DecodedRecord, read_records
from tfodkit.errors import TfodkitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", metavar="FILE_OR_GLOB", help="a TFRecord file, a folder of shards or a quoted glob")
    parser.add_argument("--draw", metavar="OUT_DIR", help="write each record's image with its boxes as PNG here")
    parser.add_argument("-n", "--num-records", type=int, default=8, help="records to read (default 8; 0: all)")
    parser.add_argument(
        "--label-map",
        help="label_map.pbtxt mapping class text to ids (default: the one beside the records, when there is one)",
    )
    parser.add_argument("--check", action="store_true",
                        help="read every record of every file: framing checksums, image decoding, boxes and "
                             "classes; list each bad record (file, index, reason); exit 1 if there is one")


def _summary(record: DecodedRecord) -> str:
    counts = collections.Counter(record.class_text)
    classes = ", ".join(f"{count} x '{name}'" for name, count in sorted(counts.items())) or "no objects"
    return (f"{record.path.name} #{record.index}: {record.filename} (source_id {record.source_id}) "
            f"{record.image.shape[1]}x{record.image.shape[0]}, {len(record.boxes)} boxes: {classes}")


def _label(record: DecodedRecord, number: int, names_by_id: dict[int, str]) -> str:
    class_id = int(record.classes[number])
    if number < len(record.class_text):
        return f"{record.class_text[number]} ({class_id})"
    return f"{names_by_id.get(class_id, 'id')} ({class_id})"


def _png_name(number: int, record: DecodedRecord) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(record.filename).stem) or "image"
    return f"{number:04d}_{stem}.png"


def _check(files: list[Path], label_map: label_maps.LabelMap | None, mapped: str) -> int:
    checker = RecordChecker(decode=True, label_map=label_map)
    total_bad, total_records = 0, 0
    for check in checker.check_files(files):
        for record in check.bad:
            print(record.line())
        total_bad += len(check.bad)
        total_records += check.readable
        state = "ok" if not check.bad else f"{len(check.bad)} bad"
        print(f"{check.path}: {check.readable} readable records, {state}")
    print(f"checked {total_records} readable records in {len(files)} file(s); {mapped}; {total_bad} bad")
    return 1 if total_bad else 0


def run(args: argparse.Namespace) -> int:
    if args.num_records < 0:
        raise TfodkitError(f"-n must be 0 (all records) or more, got {args.num_records}")
    files = record_files.find_records(args.records)
    map_path = Path(args.label_map) if args.label_map else record_files.label_map_beside(files)
    label_map = label_maps.load(map_path) if map_path else None
    mapped = f"class ids from {map_path}" if map_path else "no label map: class ids as stored"
    if args.check:
        return _check(files, label_map, mapped)
    names_by_id = label_map.names_by_id() if label_map else {}
    out_dir = Path(args.draw) if args.draw else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    records_with_problems = 0
    count = 0
    for count, record in enumerate(read_records(files, label_map, args.num_records or None), start=1):
        print(_summary(record))
        problems = record.problems()
        records_with_problems += bool(problems)
        for problem in problems:
            print(f"  problem: {problem}")
        if out_dir:
            labels = [_label(record, number, names_by_id) for number in range(len(record.classes))]
            path = out_dir / _png_name(count - 1, record)
            draw_boxes(record.image, record.boxes, labels, record.classes.tolist()).save(path)
            print(f"  drawn: {path}")
    print(f"{count} records read from {len(files)} file(s); {mapped}; {records_with_problems} with problems")
    return 1 if records_with_problems else 0
