"""A sweep file's `train:` mapping checked against `tfodkit train`'s own parser and turned into its flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

from tfodkit.commands import train as train_command
from tfodkit.errors import TfodkitError

# `tfodkit train` flags the sweep sets itself (dest -> where the sweep file says it instead).
SWEEP_OWNED = {
    "pipeline_config_path": "the sweep renders each run's pipeline.config",
    "model_dir": "each run trains in RUNS_DIR/SWEEP/RUN",
    "seed": "use `seed:` under set, grid or runs",
    "overrides": "put config fields under set, grid or runs",
    "num_train_steps": "use `num_steps:` under set, grid or runs (it keeps the schedule in step)",
    "hparams": "the sweep records each run's varied settings itself",
    "no_progress": "the sweep always passes it (the output goes to RUN/train.log)",
    "checkpoint_dir": "a sweep trains; evaluate a run with `tfodkit evaluate`",
    "eval_once": "a sweep trains; evaluate a run with `tfodkit evaluate`",
    "eval_timeout": "a sweep trains; evaluate a run with `tfodkit evaluate`",
}


def train_parser() -> argparse.ArgumentParser:
    """The parser `tfodkit train` uses."""
    parser = argparse.ArgumentParser(prog="tfodkit train")
    train_command.add_arguments(parser)
    return parser


def _action(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    spellings = {f"--{name}", f"--{name.replace('_', '-')}", f"--{name.replace('-', '_')}"}
    for action in parser._actions:  # argparse has no public lookup of an option by name
        if spellings & set(action.option_strings):
            return action
    return None


def train_flags(flags: Mapping[str, object], sweep_file: Path) -> list[str]:
    """`--flag value` arguments for `tfodkit train` from `{flag: value}`; a flag it does not have, one the sweep
    sets itself or a value its parser refuses is a TfodkitError naming the sweep file."""
    parser = train_parser()
    arguments: list[str] = []
    for name, value in flags.items():
        action = _action(parser, name)
        if action is None or action.dest == "help":
            known = sorted(a.dest for a in parser._actions if a.dest not in SWEEP_OWNED and a.dest != "help")
            raise TfodkitError(f"{sweep_file}: train: {name}: `tfodkit train` has no such flag (flags you can give "
                               f"here: {', '.join(known)})")
        if action.dest in SWEEP_OWNED:
            raise TfodkitError(f"{sweep_file}: train: {name}: not here: {SWEEP_OWNED[action.dest]}")
        option = action.option_strings[0]
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise TfodkitError(f"{sweep_file}: train: {name}: {value!r}: give true or false")
            arguments += [option] if value else []
            continue
        text = "true" if value is True else "false" if value is False else str(value)
        try:
            converted = action.type(text) if action.type else text
        except (TypeError, ValueError):
            kind = getattr(action.type, "__name__", "value")
            raise TfodkitError(f"{sweep_file}: train: {name}: {value!r} is not a valid {kind}") from None
        if action.choices and converted not in action.choices:
            raise TfodkitError(f"{sweep_file}: train: {name}: {value!r} is not one of {', '.join(action.choices)}")
        arguments += [option, text]
    return arguments
