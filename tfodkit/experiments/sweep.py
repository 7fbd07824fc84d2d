"""Render a sweep's runs (pipeline.config, hyperparameters, `tfodkit train` command) and write its directories."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tfodkit.config.customize import PipelineChoices, new_pipeline
from tfodkit.config.loader import check_pipeline, load_pipeline, parse_pipeline_text, pipeline_text
from tfodkit.errors import TfodkitError
from tfodkit.experiments.settings import apply_setting, scale_learning_rate
from tfodkit.experiments.sweep_file import MODEL_KEY, SEED_KEY, RunSpec, Setting, SweepFile, value_text
from tfodkit.experiments.train_flags import train_flags
from tfodkit.protos import pipeline_pb2
from tfodkit.training.hparams import parse_hparam, run_hparams, write_experiment_config
from tfodkit.training.trainer import PIPELINE_FILE

SWEEP_JSON = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run, rendered: its config with every setting applied, what it records, how to train it."""

    name: str
    directory: Path
    config: pipeline_pb2.TrainEvalPipelineConfig
    model: str | None  # the template it was rendered from (None: the base pipeline.config as it is)
    seed: int | None
    overrides: tuple[str, ...]  # the `--set` overrides applied to the base, aliases expanded, in order
    learning_rate_scale: float  # scale_lr linear: batch_size / the base batch size; else 1
    hparams: dict[str, object]  # as the trainer records them for TensorBoard's HParams dashboard
    command: tuple[str, ...]  # `tfodkit train ...`


@dataclasses.dataclass(frozen=True)
class Sweep:
    file: SweepFile
    root: Path  # RUNS_DIR/NAME
    base_batch_size: int
    runs: tuple[Run, ...]


def _from_pipeline(path: str, model: str) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Template `model` filled with the dataset and fine-tune checkpoint of the pipeline.config at `path`."""
    base = load_pipeline(path)
    train_paths = base.train_input_reader.tf_record_input_reader.input_path
    eval_paths = base.eval_input_reader[0].tf_record_input_reader.input_path if base.eval_input_reader else []
    if len(train_paths) != 1 or len(eval_paths) != 1:
        raise TfodkitError(f"{path}: the model axis renders a template with this config's dataset, which needs one "
                           "train and one eval input_path (a glob); give the base as `template:` instead")
    checkpoint = base.train_config.fine_tune_checkpoint
    return new_pipeline(PipelineChoices(
        model=model, label_map=base.train_input_reader.label_map_path, train=train_paths[0], val=eval_paths[0],
        fine_tune_checkpoint=checkpoint or None,
        fine_tune_checkpoint_type=base.train_config.fine_tune_checkpoint_type or "classification"))


def _base_config(file: SweepFile, model: str | None) -> pipeline_pb2.TrainEvalPipelineConfig:
    if file.template is not None:
        return new_pipeline(file.template if model is None else dataclasses.replace(file.template, model=model))
    return load_pipeline(file.pipeline) if model is None else _from_pipeline(file.pipeline, model)


def _special(settings: tuple[Setting, ...], key: str) -> object | None:
    values = [setting.value for setting in settings if setting.key == key]
    return values[-1] if values else None


def _apply(config: pipeline_pb2.TrainEvalPipelineConfig, settings: tuple[Setting, ...], file: SweepFile) -> list[str]:
    overrides = []
    for setting in settings:
        if setting.key in (MODEL_KEY, SEED_KEY):
            continue
        try:
            overrides += apply_setting(config, setting.key, value_text(setting.value))
        except TfodkitError as error:
            raise TfodkitError(f"{file.path}: {setting.where}: {setting.key}: {error}") from None
    return overrides


def _hparam_texts(config: pipeline_pb2.TrainEvalPipelineConfig, spec: RunSpec, file: SweepFile,
                  seed: int | None) -> list[tuple[str, str]]:
    """(name, text) of the run's own settings the trainer does not read from the config itself, for --hparam."""
    standard = set(run_hparams(config, seed, {}))
    texts = []
    for setting in spec.settings:
        if setting.label in standard and setting.key != MODEL_KEY:
            continue
        text = " ".join(value_text(setting.value).split())
        try:
            parse_hparam(f"{setting.label}={text}")
        except TfodkitError as error:
            raise TfodkitError(f"{file.path}: {setting.where}: {setting.key}: {error}") from None
        texts.append((setting.label, text))
    return texts


def _render(file: SweepFile, spec: RunSpec, root: Path, base_batch_size: int, flags: list[str]) -> Run:
    settings = file.fixed + spec.settings
    model, seed = _special(settings, MODEL_KEY), _special(settings, SEED_KEY)
    config = _base_config(file, model)
    model = model if model is not None or file.template is None else file.template.model
    overrides = _apply(config, settings, file)
    scale = 1.0
    if file.scale_lr == "linear" and config.train_config.batch_size != base_batch_size:
        scale = config.train_config.batch_size / base_batch_size
        overrides += scale_learning_rate(config, scale)
    check_pipeline(config, f"{file.path}: run {spec.name}")
    directory = root / spec.name
    hparam_texts = _hparam_texts(config, spec, file, seed)
    extra = {"num_steps": config.train_config.num_steps, **dict(parse_hparam(f"{n}={t}") for n, t in hparam_texts)}
    command = ["tfodkit", "train", "--pipeline_config_path", str(directory / PIPELINE_FILE),
               "--model_dir", str(directory)]
    command += ["--seed", str(seed)] if seed is not None else []
    command += flags + ["--no_progress"]
    command += [arg for name, text in hparam_texts for arg in ("--hparam", f"{name}={text}")]
    return Run(spec.name, directory, config, model, seed, tuple(overrides), scale, run_hparams(config, seed, extra),
               tuple(command))


def plan_sweep(file: SweepFile, runs_dir: str | Path) -> Sweep:
    """Every run rendered and checked (config fields, values, train flags, scale_lr); nothing is written."""
    flags = train_flags(file.train, file.path)
    base = _base_config(file, _special(file.fixed, MODEL_KEY))
    _apply(base, file.fixed, file)
    base_batch_size = base.train_config.batch_size
    root = Path(runs_dir) / file.name
    runs = tuple(_render(file, spec, root, base_batch_size, flags) for spec in file.runs)
    batch_sizes = sorted({run.config.train_config.batch_size for run in runs})
    if len(batch_sizes) > 1 and file.scale_lr is None:
        raise TfodkitError(
            f"{file.path}: the runs train with different batch sizes ({', '.join(map(str, batch_sizes))}); choose "
            f"`scale_lr: linear` (each run's learning rates x batch_size / {base_batch_size}, the base batch size) "
            "or `scale_lr: none` (the same learning rates for every batch size)")
    return Sweep(file, root, base_batch_size, runs)


def _run_record(run: Run) -> dict[str, object]:
    return {"name": run.name, "directory": str(run.directory), "model": run.model, "seed": run.seed,
            "overrides": list(run.overrides), "learning_rate_scale": run.learning_rate_scale,
            "hparams": run.hparams, "command": list(run.command)}


def _check_unchanged(run: Run) -> None:
    """A run directory holding another config (the sweep file changed since) is not reused."""
    path = run.directory / PIPELINE_FILE
    if path.is_file() and parse_pipeline_text(path.read_text(encoding="utf-8"), str(path)) != run.config:
        raise TfodkitError(f"{path}: differs from what the sweep file now gives run {run.name}; delete "
                           f"{run.directory} to train it again with the new settings, or use another sweep `name:`")


def write_sweep(sweep: Sweep) -> None:
    """Each run's pipeline.config, SWEEP/sweep.json and the HParams experiment config; a run directory that holds
    a different config is an error (before anything is written)."""
    for run in sweep.runs:
        _check_unchanged(run)
    for run in sweep.runs:
        run.directory.mkdir(parents=True, exist_ok=True)
        header = f"# Rendered by `tfodkit sweep {sweep.file.path}`: run {run.name}\n"
        (run.directory / PIPELINE_FILE).write_text(header + pipeline_text(run.config), encoding="utf-8")
    record = {"name": sweep.file.name, "sweep_file": str(sweep.file.path), "scale_lr": sweep.file.scale_lr,
              "base_batch_size": sweep.base_batch_size, "runs": [_run_record(run) for run in sweep.runs]}
    (sweep.root / SWEEP_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    write_experiment_config(sweep.root, [run.hparams for run in sweep.runs])
