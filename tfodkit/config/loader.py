"""Load a pipeline.config: parse its text format, apply `--set` overrides, reject what tfodkit cannot honour."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from google.protobuf import text_format

from tfodkit.config.consistency import consistency_problems
from tfodkit.config.field_check import field_problems, settings_error
from tfodkit.config.overrides import apply_overrides
from tfodkit.errors import TfodkitError
from tfodkit.protos import pipeline_pb2
from tfodkit.user_files import read_user_text

_POSITION = re.compile(r"^(\d+):(\d+) : ")


def parse_pipeline_text(text: str, source: str) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Parse pipeline.config text; syntax errors and unknown fields name `source`, line and column."""
    config = pipeline_pb2.TrainEvalPipelineConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        message = _POSITION.sub("", str(error))
        line, column = error.GetLine(), error.GetColumn()
        where = f"{source}:{line}:{column}" if line is not None else source
        raise TfodkitError(f"{where}: {message}") from None
    return config


def check_pipeline(config: pipeline_pb2.TrainEvalPipelineConfig, source: str) -> None:
    """Raise one TfodkitError listing every field of `config` that tfodkit cannot honour as written."""
    problems = field_problems(config)
    if not problems:
        problems = consistency_problems(config)
    if problems:
        raise settings_error(source, problems)


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Read, override and validate a pipeline.config file."""
    path = Path(path)
    config = parse_pipeline_text(read_user_text(path, "pipeline config"), str(path))
    apply_overrides(config, tuple(overrides))
    check_pipeline(config, str(path))
    return config


def pipeline_text(config: pipeline_pb2.TrainEvalPipelineConfig) -> str:
    """The config in pipeline.config text format, as the OD API writes it."""
    return text_format.MessageToString(config)
