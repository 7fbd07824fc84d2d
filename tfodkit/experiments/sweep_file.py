"""Read a sweep file (YAML): its base, fixed settings, grid and named runs, expanded into named runs."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from pathlib import Path

import yaml

from tfodkit.config.customize import PipelineChoices
from tfodkit.config.registry import CHECKPOINT_TYPES
from tfodkit.config.templates import TEMPLATES
from tfodkit.errors import TfodkitError
from tfodkit.user_files import read_user_text

TOP_KEYS = ("name", "base", "set", "grid", "runs", "scale_lr", "train")
TEMPLATE_BASE_KEYS = ("template", "label_map", "train", "val", "fine_tune_checkpoint", "fine_tune_checkpoint_type",
                      "batch_size", "learning_rate", "num_steps")
MODEL_KEY, SEED_KEY = "model", "seed"
SCALE_LR = ("linear", "none")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
_INDEX = re.compile(r"\[\d+\]")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One `key: value` of the file: `model`, `seed`, an alias or a config field path as `--set` takes it."""

    key: str
    value: object
    where: str  # the part of the file it comes from: "set", "grid", "runs[2]"
    label: str  # its name in run names and hyperparameters


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A run as the file defines it: a name and its own settings (applied after the fixed ones)."""

    name: str
    settings: tuple[Setting, ...]


@dataclasses.dataclass(frozen=True)
class SweepFile:
    """A sweep file, checked and expanded."""

    path: Path
    name: str
    pipeline: str | None  # base `pipeline:`; else `template` holds the base
    template: PipelineChoices | None
    fixed: tuple[Setting, ...]  # `set:`
    runs: tuple[RunSpec, ...]
    scale_lr: str | None
    train: dict[str, object]  # extra `tfodkit train` flags, checked by tfodkit.experiments.train_flags


def value_text(value: object) -> str:
    """A YAML value as `--set` and `--hparam` take it: true/false, `[a, b]` for a list, else as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    return str(value)


def _load_yaml(path: Path) -> dict:
    text = read_user_text(path, "sweep file")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise TfodkitError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(document, dict):
        raise TfodkitError(f"{path}: a sweep file is a YAML mapping with keys {', '.join(TOP_KEYS)}")
    unknown = [str(key) for key in document if key not in TOP_KEYS]
    if unknown:
        raise TfodkitError(f"{path}: unknown key(s) {', '.join(unknown)} (a sweep file has: {', '.join(TOP_KEYS)})")
    return document


def _mapping(document: dict, key: str, path: Path) -> dict:
    value = document.get(key) or {}
    if not isinstance(value, dict):
        raise TfodkitError(f"{path}: {key}: expected a mapping of `key: value` lines")
    return value


def _positive_int(value: object, where: str, path: Path) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TfodkitError(f"{path}: {where}: {value!r} is not a positive integer")


def _positive_number(value: object, where: str, path: Path) -> float:
    """The value as a float (YAML reads 1e-3, without a dot, as a string); an error unless it is above 0."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number > 0:
        raise TfodkitError(f"{path}: {where}: {value!r} is not a positive number")
    return number


def _base(document: dict, path: Path) -> tuple[str | None, PipelineChoices | None]:
    base = _mapping(document, "base", path)
    if ("pipeline" in base) == ("template" in base):
        raise TfodkitError(f"{path}: base: give either `pipeline: PATH` or `template: NAME` with label_map, train "
                           "and val")
    if "pipeline" in base:
        extra = [str(key) for key in base if key != "pipeline"]
        if extra:
            raise TfodkitError(f"{path}: base: {', '.join(extra)} go with `template:`; with `pipeline:` put changes "
                               "under `set:`")
        return str(base["pipeline"]), None
    unknown = [str(key) for key in base if key not in TEMPLATE_BASE_KEYS]
    if unknown:
        raise TfodkitError(f"{path}: base: unknown key(s) {', '.join(unknown)} (with `template:`: "
                           f"{', '.join(TEMPLATE_BASE_KEYS)})")
    missing = [key for key in ("label_map", "train", "val") if not base.get(key)]
    if missing:
        raise TfodkitError(f"{path}: base: `template:` needs {', '.join(missing)} (the dataset's label map and "
                           "TFRecord globs)")
    if base["template"] not in TEMPLATES:
        raise TfodkitError(f"{path}: base: template {base['template']!r} is not one of {', '.join(TEMPLATES)}")
    for key in ("batch_size", "num_steps"):
        if base.get(key) is not None:
            _positive_int(base[key], f"base: {key}", path)
    rate = base.get("learning_rate")
    rate = None if rate is None else _positive_number(rate, "base: learning_rate", path)
    checkpoint_type = base.get("fine_tune_checkpoint_type", "classification")
    if checkpoint_type not in CHECKPOINT_TYPES[1:]:
        raise TfodkitError(f"{path}: base: fine_tune_checkpoint_type {checkpoint_type!r} is not one of "
                           f"{', '.join(CHECKPOINT_TYPES[1:])}")
    return None, PipelineChoices(
        model=base["template"], label_map=str(base["label_map"]), train=str(base["train"]), val=str(base["val"]),
        batch_size=base.get("batch_size"), learning_rate=rate,
        num_steps=base.get("num_steps"),
        fine_tune_checkpoint=None if base.get("fine_tune_checkpoint") is None else str(base["fine_tune_checkpoint"]),
        fine_tune_checkpoint_type=checkpoint_type)


def _check_value(key: str, value: object, where: str, path: Path) -> None:
    if value is None or isinstance(value, dict):
        raise TfodkitError(f"{path}: {where}: {key}: {value!r} is not a value (write a message field as a "
                           "`{ ... }` string, as `--set` takes it)")
    if key == MODEL_KEY and (not isinstance(value, str) or value not in TEMPLATES):
        raise TfodkitError(f"{path}: {where}: model {value!r} is not a template ({', '.join(TEMPLATES)})")
    if key == SEED_KEY and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise TfodkitError(f"{path}: {where}: seed {value!r} is not a non-negative integer")
    if key in ("batch_size", "num_steps"):
        _positive_int(value, f"{where}: {key}", path)
    if key == "learning_rate":
        _positive_number(value, f"{where}: {key}", path)


def _short_label(key: str) -> str:
    return key if "." not in key else _INDEX.sub("", key.rsplit(".", 1)[1])


def _labels(keys: list[str]) -> dict[str, str]:
    """Each axis key's name in run names and hyperparameters: the field's own name, or the whole path where two
    axes would share it."""
    short = {key: _short_label(key) for key in keys}
    counts: dict[str, int] = {}
    for label in short.values():
        counts[label] = counts.get(label, 0) + 1
    return {key: label if counts[label] == 1 else key for key, label in short.items()}


def _name_part(setting: Setting) -> str:
    text = _UNSAFE_CHARS.sub("_", value_text(setting.value)).strip("_")
    return text if setting.key == MODEL_KEY else f"{setting.label}_{text}"


def _grid(document: dict, path: Path) -> list[tuple[str, list]]:
    grid = _mapping(document, "grid", path)
    axes = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise TfodkitError(f"{path}: grid: {key}: give a non-empty list of values, e.g. {key}: [a, b]")
        for value in values:
            _check_value(str(key), value, "grid", path)
        axes.append((str(key), values))
    return axes


def _run_entries(document: dict, path: Path) -> list[tuple[str | None, dict]]:
    runs = document.get("runs") or []
    if not isinstance(runs, list):
        raise TfodkitError(f"{path}: runs: expected a list of mappings, each `- name: NAME` and its settings")
    entries = []
    for index, entry in enumerate(runs):
        where = f"runs[{index}]"
        if not isinstance(entry, dict):
            raise TfodkitError(f"{path}: {where}: expected a mapping (`name: NAME` and `key: value` settings)")
        entry = dict(entry)
        name = entry.pop("name", None)
        if name is not None and not _SAFE_NAME.match(str(name)):
            raise TfodkitError(f"{path}: {where}: name {name!r}: use letters, digits and . _ + - (a directory "
                               "name), starting with a letter or digit")
        for key, value in entry.items():
            _check_value(str(key), value, where, path)
        entries.append((None if name is None else str(name), {str(key): value for key, value in entry.items()}))
    return entries


def _expand(entries: list[tuple[str | None, dict]], grid: list[tuple[str, list]], fixed_keys: set[str],
            path: Path) -> list[RunSpec]:
    """Each named run crossed with each grid point (either alone when the other is absent)."""
    grid_keys = [key for key, _ in grid]
    axis_keys = list(dict.fromkeys([key for _, entry in entries for key in entry] + grid_keys))
    for key in axis_keys:
        if key in fixed_keys:
            raise TfodkitError(f"{path}: {key} is under both `set:` and a grid or run; keep one")
    for index, (_, entry) in enumerate(entries):
        for key in entry:
            if key in grid_keys:
                raise TfodkitError(f"{path}: runs[{index}]: {key} is also a grid axis; keep one")
    labels = _labels(axis_keys)
    varying = {key for key, values in grid if len(values) > 1}
    specs = []
    for (index, (name, entry)), point in itertools.product(enumerate(entries or [(None, {})]),
                                                           itertools.product(*(values for _, values in grid))):
        own = [Setting(key, value, f"runs[{index}]", labels[key]) for key, value in entry.items()]
        on_grid = [Setting(key, value, "grid", labels[key]) for key, value in zip(grid_keys, point)]
        parts = [name] if name is not None else [_name_part(setting) for setting in own]
        parts += [_name_part(setting) for setting in on_grid if setting.key in varying]
        specs.append(RunSpec("-".join(part for part in parts if part) or "base", tuple(own + on_grid)))
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TfodkitError(f"{path}: several runs would be named {', '.join(repeated)}; give the runs distinct "
                           "`name:`s or values")
    return specs


def load_sweep_file(path: str | Path) -> SweepFile:
    """Parse and check a sweep file's structure (config field paths are checked when the runs are rendered)."""
    path = Path(path)
    document = _load_yaml(path)
    name = str(document.get("name") or _UNSAFE_CHARS.sub("_", path.stem))
    if not _SAFE_NAME.match(name):
        raise TfodkitError(f"{path}: name {name!r}: use letters, digits and . _ + - (a directory name)")
    pipeline, template = _base(document, path)
    fixed = []
    for key, value in _mapping(document, "set", path).items():
        _check_value(str(key), value, "set", path)
        fixed.append(Setting(str(key), value, "set", _short_label(str(key))))
    scale_lr = document.get("scale_lr")
    if scale_lr is not None and scale_lr not in SCALE_LR:
        raise TfodkitError(f"{path}: scale_lr: {scale_lr!r}: choose linear (learning rate x batch_size / the base "
                           "batch size) or none")
    runs = _expand(_run_entries(document, path), _grid(document, path), {s.key for s in fixed}, path)
    return SweepFile(path=path, name=name, pipeline=pipeline, template=template, fixed=tuple(fixed),
                     runs=tuple(runs), scale_lr=scale_lr, train={str(k): v for k, v in
                                                                  _mapping(document, "train", path).items()})
