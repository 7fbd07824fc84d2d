"""inspect-anchors' analysis and text: coverage of the config's anchors, its breakdowns, the grid limit and the
suggested settings (shared by `tfodkit inspect-anchors` and `tfodkit inspect-pipeline --records`)."""

from __future__ import annotations

import dataclasses
import shlex

import numpy as np

from tfodkit.anchor_fit import buckets
from tfodkit.anchor_fit.coverage import AnchorGrid, Coverage
from tfodkit.anchor_fit.grid_limit import best_centred_iou
from tfodkit.anchor_fit.groundtruth import GroundTruth, read_ground_truth
from tfodkit.anchor_fit.search import (
    DEFAULT_MAX_GROWTH, FIELDS, MIN_GAIN, Suggestion, config_coverage, current_settings, generator_kind, search,
    setting_text)
from tfodkit.protos import pipeline_pb2
from tfodkit.text_table import format_table

POOREST_PER_KIND = 2  # size and aspect-ratio buckets named as the poorest
WORST_CLASSES = 3


@dataclasses.dataclass(frozen=True)
class AnchorFit:
    """Everything inspect-anchors reports."""

    groundtruth: GroundTruth
    coverage: Coverage
    centred_iou: np.ndarray  # [K] best IoU any anchor shape could reach at the existing anchor centres
    suggestion: Suggestion | None

    def groups(self, coverage: Coverage | None = None) -> list[buckets.Group]:
        """Size, aspect-ratio and class groups of `coverage` (default: the config's)."""
        coverage = coverage or self.coverage
        return (buckets.size_groups(self.groundtruth, coverage) + buckets.aspect_groups(self.groundtruth, coverage)
                + buckets.class_groups(self.groundtruth, coverage))

    def poorest(self) -> list[buckets.Group]:
        """The poorest size and aspect-ratio buckets and the worst classes, by matched share."""
        groups = self.groups()
        picked = []
        for kind, count in (("size", POOREST_PER_KIND), ("aspect", POOREST_PER_KIND), ("class", WORST_CLASSES)):
            picked += buckets.poorest([group for group in groups if group.kind == kind], self.coverage, count)
        return picked


def analyse(config: pipeline_pb2.TrainEvalPipelineConfig, records: str | None = None, *, suggest: bool = True,
            max_growth: float = DEFAULT_MAX_GROWTH) -> AnchorFit:
    """Read the boxes, measure the config's anchors and (with `suggest`) search for better ones."""
    groundtruth = read_ground_truth(config, records)
    grid = AnchorGrid.of_model(config)
    coverage = config_coverage(config, groundtruth, grid)
    centred = best_centred_iou(grid.anchors(config), groundtruth.flat_boxes)
    suggestion = search(config, groundtruth, grid, max_growth) if suggest else None
    return AnchorFit(groundtruth, coverage, centred, suggestion)


def _percent(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.1%})"


def _group_table(title: str, groups: list[buckets.Group]) -> list[str]:
    rows = [(g.name, g.boxes, g.matched, f"{g.share:.1%}", f"{g.median_best_iou:.2f}", g.forced) for g in groups]
    headers = ("group", "boxes", "matched", "share", "median best IoU", "forced only")
    return format_table(headers, rows, title).split("\n")


def _coverage_lines(fit: AnchorFit, config: pipeline_pb2.TrainEvalPipelineConfig) -> list[str]:
    gt, cov = fit.groundtruth, fit.coverage
    total = len(cov.best_iou)
    height, width = gt.image_size
    kind = generator_kind(config)
    settings = ", ".join(f"{field} {setting_text(value)}" for field, value in current_settings(config, kind).items())
    threshold = cov.matched_threshold
    lines = [
        f"records: {gt.source}: {len(gt.boxes)} images with boxes, {total} boxes, at {height}x{width} after the "
        "resizer (no augmentation)",
        f"anchors: {cov.num_anchors} from {kind} ({settings}); matcher: matched_threshold {threshold}, "
        f"force_match_for_each_row {str(cov.force_match).lower()}",
    ]
    if gt.boxes_over_limit:
        lines.append(f"left out: {gt.boxes_over_limit} boxes over max_number_of_boxes, as training leaves them out")
    lines.append(f"matched (an anchor at IoU >= {threshold} that the matcher gives the box): "
                 f"{_percent(int(cov.matched.sum()), total)}")
    forced = cov.forced
    if cov.force_match:
        median = f", median best IoU {np.median(cov.best_iou[forced]):.2f}" if forced.any() else ""
        lines.append(f"force_match_for_each_row adds {_percent(int(forced.sum()), total)} through an anchor below "
                     f"the threshold{median}: positive {_percent(int(cov.positive.sum()), total)}")
    else:
        lines.append("force_match_for_each_row is off: unmatched boxes get no anchor at all")
    lines.append(f"best IoU with any anchor: median {np.median(cov.best_iou):.2f}, "
                 f"10% of boxes under {np.quantile(cov.best_iou, 0.1):.2f}")
    if threshold is not None:
        limited = int((fit.centred_iou < threshold).sum())
        lines.append(f"grid limit: {_percent(limited, total)} stay under IoU {threshold} even with an anchor of "
                     "their own shape at the nearest anchor centre (only finer feature maps, e.g. a larger input "
                     "or FPN levels, match those)")
    return lines


def _suggestion_lines(fit: AnchorFit, config_path: str) -> list[str]:
    suggestion = fit.suggestion
    fields = ", ".join(FIELDS[suggestion.generator])
    growth = suggestion.max_anchors / suggestion.start.coverage.num_anchors
    lines = [f"search: coordinate ascent over {suggestion.generator} {fields}; {suggestion.evaluated} settings "
             f"measured, at most {suggestion.max_anchors} anchors ({growth:.2g}x the config's)"]
    if not suggestion.improved:
        lines.append(f"no setting matched {MIN_GAIN:.1%} more of the boxes: keep the config's anchors")
        return lines
    before, after = suggestion.start.coverage, suggestion.best.coverage
    lines.append(f"suggested: matched {before.share:.1%} -> {after.share:.1%} of the boxes, anchors "
                 f"{before.num_anchors} -> {after.num_anchors}")
    after_groups = {(g.kind, g.name): g for g in fit.groups(after)}
    changes = [f"{g.kind} {g.name} {g.share:.1%} -> {after_groups[(g.kind, g.name)].share:.1%}"
               for g in fit.poorest()]
    lines.append("poorest groups: " + "; ".join(changes))
    flags = " ".join(f"--set {shlex.quote(override)}" for override in suggestion.best.overrides)
    lines.append("try (new-pipeline, train, inspect-pipeline and inspect-anchors take the same --set overrides):")
    lines.append(f"  tfodkit train --pipeline_config_path {shlex.quote(config_path)} --model_dir RUN_DIR {flags}")
    lines.append("or write them into the config's anchor_generator. Changed aspect_ratios or scales_per_octave change "
                 "the box predictor's outputs per location: train from a backbone (classification) checkpoint, not "
                 "a detection one.")
    lines.append("More boxes matched is not always a better model: compare a short run with and without them on mAP@0.5 "
                 "(docs/anchors.md: on the digits demo set smaller FPN anchors trained worse).")
    return lines


def report_lines(fit: AnchorFit, config: pipeline_pb2.TrainEvalPipelineConfig, config_path: str) -> list[str]:
    """The whole report, one line per entry."""
    height, width = fit.groundtruth.image_size
    groups = fit.groups()
    lines = _coverage_lines(fit, config)
    for kind, title in (("size", f"by size (COCO buckets: area < 32^2, < 96^2, larger; pixels at {height}x{width}):"),
                        ("aspect", f"by aspect ratio (box width / height in pixels at {height}x{width}):"),
                        ("class", "by class:")):
        lines += ["", *_group_table(title, [group for group in groups if group.kind == kind])]
    poorest = fit.poorest()
    named = [f"{g.kind} {g.name} {g.share:.1%} of {g.boxes}" for g in poorest if g.kind != "class"]
    lines += ["", f"poorest buckets (below the overall {fit.coverage.share:.1%}): " + ("; ".join(named) or "none")]
    worst = [f"{g.name} {g.share:.1%} of {g.boxes}" for g in poorest if g.kind == "class"]
    lines.append("worst classes: " + ("; ".join(worst) or "none below the overall share"))
    if fit.suggestion is not None:
        lines += ["", *_suggestion_lines(fit, config_path)]
    return lines
