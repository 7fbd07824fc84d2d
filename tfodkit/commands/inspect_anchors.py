"""`tfodkit inspect-anchors`: how many ground-truth boxes a pipeline's anchors can match, and better anchors."""

from __future__ import annotations

import argparse

from tfodkit.anchor_fit.histogram import draw_histogram
from tfodkit.anchor_fit.report import analyse, report_lines
from tfodkit.anchor_fit.search import DEFAULT_MAX_GROWTH
from tfodkit.config.loader import load_pipeline
from tfodkit.errors import TfodkitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="PIPELINE", help="pipeline.config whose anchors and matcher to check")
    parser.add_argument("--records", metavar="GLOB",
                        help="TFRecords to read (a file or a quoted glob; default: the config's train_input_reader)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config field first, e.g. a suggested anchor setting (repeatable)")
    parser.add_argument("--histogram", metavar="PNG", help="draw the best-IoU histogram (with the suggestion's) here")
    parser.add_argument("--no-search", action="store_true", help="measure the config's anchors only, suggest nothing")
    parser.add_argument("--max-anchor-growth", type=float, default=DEFAULT_MAX_GROWTH,
                        help="suggested settings may have at most this many times the config's anchors "
                             "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.max_anchor_growth < 1.0:
        raise TfodkitError(f"--max-anchor-growth {args.max_anchor_growth}: must be at least 1")
    config = load_pipeline(args.config, args.overrides)
    fit = analyse(config, args.records, suggest=not args.no_search, max_growth=args.max_anchor_growth)
    print("\n".join(report_lines(fit, config, args.config)))
    if args.histogram:
        curves = {"config": fit.coverage}
        if fit.suggestion is not None and fit.suggestion.improved:
            curves["suggested"] = fit.suggestion.best.coverage
        draw_histogram(args.histogram, curves, f"{args.config}: best IoU per ground-truth box")
        print(f"\nhistogram: {args.histogram}")
    return 0
