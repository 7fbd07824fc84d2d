"""`tfodkit detect`: an exported model on images -> drawings, JSON and (optionally) LabelImg XML pre-labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfodkit.export.detect import DetectOptions, detect_images
from tfodkit.export.runtime import load_detector


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="an export directory (tfodkit export), its saved_model/, or a .tflite file "
                             "(tfodkit export-tflite; model.json and labels.txt beside it)")
    parser.add_argument("--images", required=True, nargs="+", type=Path, metavar="DIR_OR_FILE",
                        help="image files, or folders whose .jpg/.jpeg/.png/.bmp files are all taken")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for the drawings (<image stem>.png) and detections (<image stem>.json)")
    parser.add_argument("--min-score", type=float, default=0.5,
                        help="keep detections scoring at least this (default: %(default)s)")
    parser.add_argument("--labelimg", action="store_true",
                        help="also write a LabelImg (Pascal VOC) XML beside each image, to review in LabelImg")
    parser.add_argument("--labelimg-dir", type=Path, metavar="DIR",
                        help="write the LabelImg XML files into DIR instead (implies --labelimg; open DIR as "
                             "LabelImg's save folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing XML files (by default an existing XML is never touched)")
    parser.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    detector = load_detector(args.model)
    options = DetectOptions(images=tuple(args.images), out=args.out, min_score=args.min_score,
                            labelimg=args.labelimg, labelimg_dir=args.labelimg_dir, overwrite=args.overwrite,
                            progress=args.progress)
    result = detect_images(detector, options)
    print(f"{len(result.drawings)} image(s) run through {detector.path}; "
          f"drawings and JSON in {args.out}:")
    for drawing, json_file in zip(result.drawings, result.json_files):
        print(f"  {drawing}  {json_file}")
    if result.xml_files:
        print(f"{len(result.xml_files)} LabelImg XML file(s) written (review them in LabelImg):")
        print("\n".join(f"  {path}" for path in result.xml_files))
    if result.skipped_xml:
        print(f"{len(result.skipped_xml)} XML file(s) already existed and were left unchanged (--overwrite to "
              "replace them):")
        print("\n".join(f"  {path}" for path in result.skipped_xml))
    if result.failed:
        print(f"{len(result.failed)} image(s) could not be processed:")
        print("\n".join(f"  {path}: {reason}" for path, reason in result.failed))
        return 1
    return 0
