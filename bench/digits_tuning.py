"""What a practitioner changes in a template for the digits demo set, shared by bench_train and bench_parity.

Two changes (docs/benchmarks.md has the reasons): digits are not mirror-symmetric, so the templates'
random_horizontal_flip (their first augmentation) becomes a brightness jitter; and in SSD-style templates
(ssd_anchor_generator) the anchors become the ones `tfodkit inspect-anchors` suggests for the config's training
records. FPN templates (multiscale_anchor_generator) keep their anchors: on the digits each suggestion for them
(smaller anchors, 86-89% of the boxes matched against 64%) trained far worse in 2000 steps than the template's
anchors with the same brightness jitter (docs/anchors.md). The suggestion is the anchor search's result
on the rendered template, deterministic for a given config and records, so it is cached beside the records (keyed
by the config's text and the records' sizes) instead of searched again on every run (about a minute of CPU).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.bench_inputs import template_config
from tfodkit.anchor_fit.report import analyse
from tfodkit.anchor_fit.search import DEFAULT_MAX_GROWTH, generator_kind
from tfodkit.config.loader import pipeline_text
from tfodkit.protos import pipeline_pb2

DIGITS_FLIP = "train_config.data_augmentation_options[0]={ random_adjust_brightness { } }"
CACHE = "anchor_suggestions.json"  # beside the records: config key -> the suggestion's --set overrides


def _config_key(config_text: str, records: Path) -> str:
    """A digest of the rendered config, the search's anchor-count bound and the training records' names and sizes."""
    digest = hashlib.sha256(config_text.encode("utf-8"))
    digest.update(f"max_growth={DEFAULT_MAX_GROWTH}".encode("utf-8"))
    for record in sorted(records.glob("train-*.tfrecord")):
        digest.update(f"{record.name}:{record.stat().st_size}".encode("utf-8"))
    return digest.hexdigest()


def suggested_anchors(config: pipeline_pb2.TrainEvalPipelineConfig, records: Path) -> tuple[str, ...]:
    """inspect-anchors' suggested anchor overrides for a template rendered for `records` (searched once, cached)."""
    key = _config_key(pipeline_text(config), records)
    cache = records / CACHE
    known = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    if key not in known:
        known[key] = list(analyse(config).suggestion.best.overrides)
        cache.write_text(json.dumps(known, indent=1), encoding="utf-8")
    return tuple(known[key])


def tuned_overrides(template: str, records: Path) -> tuple[str, ...]:
    """The practitioner's changes for the digits: brightness for flips, then (SSD-style anchors only)
    inspect-anchors' anchors."""
    config = template_config(template, records)
    if generator_kind(config) == "multiscale_anchor_generator":
        return (DIGITS_FLIP,)
    return (DIGITS_FLIP,) + suggested_anchors(config, records)
