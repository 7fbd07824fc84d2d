"""The file paths a pipeline.config refers to, and the OD API's placeholder for paths still to be filled in."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from tfodkit.protos import pipeline_pb2

# The string the OD API's sample configs use for every path the user must configure.
PLACEHOLDER = "PATH_TO_BE_CONFIGURED"
# fine_tune_checkpoint may also name a Keras weights file (what `tfodkit pretrained-backbone` writes).
KERAS_WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".keras")


def is_placeholder(value: str) -> bool:
    """True for a path that still holds the OD API's placeholder."""
    return PLACEHOLDER in value


def is_keras_weights_file(value: str) -> bool:
    """True for a fine_tune_checkpoint that names a Keras weights file rather than a TF checkpoint prefix."""
    return value.endswith(KERAS_WEIGHTS_SUFFIXES)


@dataclass(frozen=True)
class PathReference:
    """One path-valued field of the config."""

    field: str
    value: str
    # "file" (one path), "glob" (a TFRecord pattern: files matching it), or "checkpoint" (a TF checkpoint
    # prefix, whose `.index` file must exist, or a Keras weights file).
    kind: str

    def matches(self, base: Path | None = None) -> list[Path]:
        """The existing files this reference names (relative paths resolved against `base`, default cwd)."""
        if not self.value or is_placeholder(self.value):
            return []
        pattern = Path(self.value).expanduser()
        if base is not None and not pattern.is_absolute():
            pattern = base / pattern
        if self.kind == "glob":
            return sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file())
        if self.kind == "checkpoint" and not is_keras_weights_file(self.value):
            index = pattern.with_name(pattern.name + ".index")
            return [index] if index.is_file() else []
        return [pattern] if pattern.is_file() else []


def _reader_references(reader: pipeline_pb2.InputReader, prefix: str) -> list[PathReference]:
    refs = []
    if reader.label_map_path:
        refs.append(PathReference(f"{prefix}.label_map_path", reader.label_map_path, "file"))
    for index, path in enumerate(reader.tf_record_input_reader.input_path):
        refs.append(PathReference(f"{prefix}.tf_record_input_reader.input_path[{index}]", path, "glob"))
    return refs


def referenced_paths(config: pipeline_pb2.TrainEvalPipelineConfig) -> list[PathReference]:
    """Every path the config names: checkpoint, label maps and TFRecord patterns, in file order."""
    refs = []
    if config.train_config.fine_tune_checkpoint:
        refs.append(
            PathReference("train_config.fine_tune_checkpoint", config.train_config.fine_tune_checkpoint, "checkpoint")
        )
    if config.HasField("train_input_reader"):
        refs.extend(_reader_references(config.train_input_reader, "train_input_reader"))
    for index, reader in enumerate(config.eval_input_reader):
        refs.extend(_reader_references(reader, f"eval_input_reader[{index}]"))
    return refs
