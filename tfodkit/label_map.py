"""Label maps in the OD API's `StringIntLabelMap` text format: read, validate, build and write."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from google.protobuf import text_format

from tfodkit.errors import TfodkitError
from tfodkit.protos import string_int_label_map_pb2
from tfodkit.user_files import read_user_text


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """Class names and their 1-based ids (id 0 is the background class)."""

    ids: dict[str, int]
    display_names: dict[str, str]

    @property
    def num_classes(self) -> int:
        return max(self.ids.values(), default=0)

    def names_by_id(self) -> dict[int, str]:
        return {class_id: name for name, class_id in self.ids.items()}

    def to_proto(self) -> string_int_label_map_pb2.StringIntLabelMap:
        proto = string_int_label_map_pb2.StringIntLabelMap()
        for name, class_id in sorted(self.ids.items(), key=lambda item: item[1]):
            item = proto.item.add(name=name, id=class_id)
            if self.display_names.get(name, name) != name:
                item.display_name = self.display_names[name]
        return proto

    def to_text(self) -> str:
        return text_format.MessageToString(self.to_proto())

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_text(), encoding="utf-8")


def from_class_names(names: Iterable[str]) -> LabelMap:
    """Label map of the distinct names, sorted, with ids from 1."""
    ordered = sorted(set(names))
    return LabelMap(ids={name: i + 1 for i, name in enumerate(ordered)}, display_names={})


def parse(text: str, source: str = "<label map>") -> LabelMap:
    """Parse label-map text; errors name the source and the line."""
    proto = string_int_label_map_pb2.StringIntLabelMap()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        raise TfodkitError(f"{source}:{error}") from None
    ids: dict[str, int] = {}
    display_names: dict[str, str] = {}
    seen_ids: dict[int, str] = {}
    for index, item in enumerate(proto.item, start=1):
        where = f"{source}: item #{index}"
        if not item.HasField("name") or not item.name:
            raise TfodkitError(f"{where} has no name")
        if not item.HasField("id"):
            raise TfodkitError(f"{where} ({item.name!r}) has no id")
        if item.id < 1:
            raise TfodkitError(f"{where} ({item.name!r}) has id {item.id}; ids start at 1 (0 is the background)")
        if item.name in ids:
            raise TfodkitError(f"{where}: name {item.name!r} appears twice")
        if item.id in seen_ids:
            raise TfodkitError(f"{where}: id {item.id} is used by both {seen_ids[item.id]!r} and {item.name!r}")
        ids[item.name] = item.id
        seen_ids[item.id] = item.name
        if item.HasField("display_name"):
            display_names[item.name] = item.display_name
    if not ids:
        raise TfodkitError(f"{source}: the label map has no items")
    return LabelMap(ids=ids, display_names=display_names)


def load(path: str | Path) -> LabelMap:
    """Read a label map file (`label_map.pbtxt`)."""
    path = Path(path)
    return parse(read_user_text(path, "label map"), source=str(path))
