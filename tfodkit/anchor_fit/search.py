"""Search for anchor settings that match more ground-truth boxes: a coordinate ascent over the anchor
generator's size and shape fields, every candidate measured with the model's own generator and matcher.

The search starts from the config's settings. One round visits each field in turn (ssd_anchor_generator:
min_scale, max_scale, aspect_ratios; multiscale_anchor_generator: anchor_scale, scales_per_octave,
aspect_ratios), measures the matched share of every candidate value of that field with the other fields as
they stand, and keeps the best candidate when it raises the share by at least MIN_GAIN. Candidates with more
anchors than max_growth times the config's count are skipped. Rounds repeat until one changes nothing, at most
MAX_ROUNDS times. Ties go to fewer anchors, then to the higher mean best IoU.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Iterator

from tfodkit.anchor_fit.coverage import AnchorGrid, Coverage, config_matcher, measure
from tfodkit.anchor_fit.groundtruth import GroundTruth
from tfodkit.config.overrides import apply_overrides
from tfodkit.protos import pipeline_pb2

MIN_SCALES = (0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3)
MAX_SCALES = (0.5, 0.65, 0.8, 0.95)
ANCHOR_SCALES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
SCALES_PER_OCTAVE = (1, 2, 3, 4)
# Aspect ratios (width / height) that a candidate adds to the current list, removes from it or swaps into it.
RATIO_POOL = (0.2, 0.25, 0.3333, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
MIN_GAIN = 0.005  # a move must match at least half a percent more of the boxes
MAX_ROUNDS = 3
DEFAULT_MAX_GROWTH = 1.0  # candidates may have at most this many times the config's anchors (docs/anchors.md: why)
FIELDS = {
    "ssd_anchor_generator": ("min_scale", "max_scale", "aspect_ratios"),
    "multiscale_anchor_generator": ("anchor_scale", "scales_per_octave", "aspect_ratios"),
}

Value = float | int | tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """Anchor settings (the fields changed from the config's) and how well they match the boxes."""

    settings: tuple[tuple[str, Value], ...]
    overrides: tuple[str, ...]
    coverage: Coverage

    @property
    def rank(self) -> tuple[float, int, float]:
        return self.coverage.share, -self.coverage.num_anchors, float(self.coverage.best_iou.mean())


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """The config's anchors and the best settings found (the same when nothing beat them)."""

    generator: str
    start: Candidate
    best: Candidate
    max_anchors: int
    evaluated: int  # candidates measured

    @property
    def improved(self) -> bool:
        return bool(self.best.overrides)


def generator_kind(config: pipeline_pb2.TrainEvalPipelineConfig) -> str:
    """`ssd_anchor_generator` or `multiscale_anchor_generator`."""
    return config.model.ssd.anchor_generator.WhichOneof("anchor_generator_oneof")


def current_settings(config: pipeline_pb2.TrainEvalPipelineConfig, kind: str) -> dict[str, Value]:
    """The searched fields' values in the config (ratios rounded to 4 decimals, as candidates are written)."""
    generator = getattr(config.model.ssd.anchor_generator, kind)
    values: dict[str, Value] = {}
    for field in FIELDS[kind]:
        value = getattr(generator, field)
        if field == "aspect_ratios":
            values[field] = tuple(round(float(ratio), 4) for ratio in value)
        else:
            values[field] = value if isinstance(value, int) else round(float(value), 4)
    return values


def setting_text(value: Value) -> str:
    """A setting as pipeline.config / --set syntax writes it."""
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(ratio) for ratio in value) + "]"
    return repr(value)


def override_strings(kind: str, settings: dict[str, Value]) -> tuple[str, ...]:
    """`--set` values (PATH=VALUE) for anchor settings."""
    prefix = f"model.ssd.anchor_generator.{kind}"
    return tuple(f"{prefix}.{field}={setting_text(value)}" for field, value in settings.items())


def _ratio_moves(ratios: tuple[float, ...]) -> Iterator[tuple[float, ...]]:
    """Lists one ratio away from `ratios`: one added, one removed (never the last) or one swapped."""
    new = [ratio for ratio in RATIO_POOL if ratio not in ratios]
    for ratio in new:
        yield ratios + (ratio,)
    for index in range(len(ratios)):
        if len(ratios) > 1:
            yield ratios[:index] + ratios[index + 1:]
        for ratio in new:
            yield ratios[:index] + (ratio,) + ratios[index + 1:]


def _field_values(kind: str, field: str, values: dict[str, Value],
                  config: pipeline_pb2.TrainEvalPipelineConfig) -> Iterator[Value]:
    if field == "aspect_ratios":
        yield from _ratio_moves(values[field])
        return
    if kind == "ssd_anchor_generator" and config.model.ssd.anchor_generator.ssd_anchor_generator.scales:
        return  # explicit scales: min_scale and max_scale are not used
    options = {"min_scale": MIN_SCALES, "max_scale": MAX_SCALES, "anchor_scale": ANCHOR_SCALES,
               "scales_per_octave": SCALES_PER_OCTAVE}[field]
    for value in options:
        if value == values[field]:
            continue
        if field == "min_scale" and value >= values["max_scale"]:
            continue
        if field == "max_scale" and value <= values["min_scale"]:
            continue
        yield value


class _Evaluator:
    """Measures settings on the ground truth; remembers what it measured."""

    def __init__(self, config: pipeline_pb2.TrainEvalPipelineConfig, groundtruth: GroundTruth, grid: AnchorGrid,
                 kind: str) -> None:
        self.config, self.groundtruth, self.grid, self.kind = config, groundtruth, grid, kind
        self.matcher = config_matcher(config)
        self.original = current_settings(config, kind)
        self.cache: dict[tuple, Candidate | None] = {}

    def candidate(self, values: dict[str, Value], max_anchors: int | None) -> Candidate | None:
        changed = {field: value for field, value in values.items() if value != self.original[field]}
        key = tuple(changed.items())
        if key not in self.cache:
            overrides = override_strings(self.kind, changed)
            variant = copy.deepcopy(self.config)
            apply_overrides(variant, overrides)
            anchors = self.grid.anchors(variant)
            too_many = max_anchors is not None and len(anchors) > max_anchors
            self.cache[key] = None if too_many else Candidate(
                key, overrides, measure(anchors, self.groundtruth, self.matcher))
        return self.cache[key]


def config_coverage(config: pipeline_pb2.TrainEvalPipelineConfig, groundtruth: GroundTruth,
                    grid: AnchorGrid) -> Coverage:
    """How the config's own anchors and matcher cover the boxes."""
    return measure(grid.anchors(config), groundtruth, config_matcher(config))


def search(config: pipeline_pb2.TrainEvalPipelineConfig, groundtruth: GroundTruth, grid: AnchorGrid,
           max_growth: float = DEFAULT_MAX_GROWTH) -> Suggestion:
    """The coordinate ascent described in this module's docstring."""
    kind = generator_kind(config)
    evaluator = _Evaluator(config, groundtruth, grid, kind)
    values = dict(evaluator.original)
    start = evaluator.candidate(values, None)
    max_anchors = int(max_growth * start.coverage.num_anchors)
    best = start
    for _ in range(MAX_ROUNDS):
        changed = False
        for field in FIELDS[kind]:
            trials = [evaluator.candidate({**values, field: value}, max_anchors)
                      for value in _field_values(kind, field, values, config)]
            trials = [trial for trial in trials if trial is not None]
            if not trials:
                continue
            top = max(trials, key=lambda trial: trial.rank)
            if top.coverage.share >= best.coverage.share + MIN_GAIN:
                best, changed = top, True
                values = {**evaluator.original, **dict(top.settings)}
        if not changed:
            break
    return Suggestion(kind, start, best, max_anchors, len(evaluator.cache))
