"""`--set path.to.field=value` overrides applied to a parsed pipeline.config.

Paths are dotted field names; `name[i]` picks an element of a repeated field (i == length appends).
Values use pipeline.config syntax: scalars as written in the file (strings may be left unquoted), a
repeated scalar field takes `[a, b]` (or one value) and is replaced as a whole, and a message field takes
`{ ... }` text and is replaced as a whole. Setting one member of a oneof clears the others, as in the file.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tfodkit.errors import TfodkitError

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?$")


def _field(message: Message, name: str, override: str) -> FieldDescriptor:
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        known = ", ".join(f.name for f in message.DESCRIPTOR.fields)
        raise TfodkitError(
            f"--set {override}: message {message.DESCRIPTOR.name} has no field {name!r} (its fields: {known})"
        )
    return field


def _parse_segment(segment: str, override: str) -> tuple[str, int | None]:
    match = _SEGMENT.match(segment)
    if not match:
        raise TfodkitError(f"--set {override}: {segment!r} is not a field name or name[index]")
    index = match.group("index")
    return match.group("name"), None if index is None else int(index)


def _element(container: Any, index: int, field_path: str, override: str, add: Callable[[], Message]) -> Message:
    if index < len(container):
        return container[index]
    if index == len(container):
        return add()
    field_path = re.sub(r"\[\d+\]$", "", field_path)
    raise TfodkitError(f"--set {override}: {field_path} has {len(container)} elements; index {index} is out of range")


def _descend(message: Message, segment: str, field_path: str, override: str) -> Message:
    name, index = _parse_segment(segment, override)
    field = _field(message, name, override)
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        raise TfodkitError(f"--set {override}: {field_path} is {_kind(field)}, not a message with fields")
    repeated = field.is_repeated
    if repeated and index is None:
        raise TfodkitError(f"--set {override}: {field_path} is repeated; pick an element with {name}[0]")
    if not repeated and index is not None:
        raise TfodkitError(f"--set {override}: {name} is not repeated; drop the [{index}]")
    if repeated:
        container = getattr(message, name)
        return _element(container, index, field_path, override, container.add)
    return getattr(message, name)


def _kind(field: FieldDescriptor) -> str:
    """`an integer`, `an enum Activation`...: what a scalar field holds."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "an enum " + field.enum_type.name
    return {
        FieldDescriptor.TYPE_STRING: "a string",
        FieldDescriptor.TYPE_BOOL: "a bool",
        FieldDescriptor.TYPE_FLOAT: "a float",
        FieldDescriptor.TYPE_DOUBLE: "a float",
    }.get(field.type, "an integer")


def _scalar_text(field: FieldDescriptor, value: str) -> str:
    stripped = value.strip()
    if field.type == FieldDescriptor.TYPE_STRING and not stripped.startswith(("'", '"')):
        return '"' + stripped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return stripped


def _list_text(field: FieldDescriptor, body: str) -> str:
    """`[a, b]` with each string item quoted unless it already is (items must not contain commas)."""
    if field.type != FieldDescriptor.TYPE_STRING or not body.endswith("]"):
        return body
    items = [item for item in body[1:-1].split(",") if item.strip()]
    return "[" + ", ".join(_scalar_text(field, item) for item in items) + "]"


def _merge(message: Message, text: str, override: str) -> None:
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as error:
        detail = re.sub(r"^\d+:\d+ : ", "", str(error))
        raise TfodkitError(f"--set {override}: {detail}") from None


def _assign(parent: Message, segment: str, value: str, field_path: str, override: str) -> None:
    name, index = _parse_segment(segment, override)
    field = _field(parent, name, override)
    repeated = field.is_repeated
    if not repeated and index is not None:
        raise TfodkitError(f"--set {override}: {name} is not repeated; drop the [{index}]")
    body = value.strip()
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if not (body.startswith("{") and body.endswith("}")):
            raise TfodkitError(f"--set {override}: {field_path} is a message; give its fields as {{ ... }}")
        if index is None:
            parent.ClearField(name)
            _merge(parent, f"{name} {body}", override)
            return
        container = getattr(parent, name)
        target = _element(container, index, field_path, override, container.add)
        target.Clear()
        _merge(target, body[1:-1], override)
        return
    if index is None:
        text = _list_text(field, body) if repeated and body.startswith("[") else _scalar_text(field, body)
        parent.ClearField(name)
        _merge(parent, f"{name}: {text}", override)
        return
    container = getattr(parent, name)
    if index > len(container):
        raise TfodkitError(
            f"--set {override}: {field_path} has {len(container)} elements; index {index} is out of range"
        )
    scratch = parent.__class__()
    _merge(scratch, f"{name}: {_scalar_text(field, body)}", override)
    if index == len(container):
        container.append(getattr(scratch, name)[0])
    else:
        container[index] = getattr(scratch, name)[0]


def apply_override(config: Message, override: str) -> None:
    """Apply one `path.to.field=value` override to `config` in place; errors name the override and field."""
    path, sep, value = override.partition("=")
    path = path.strip()
    if not sep or not path:
        raise TfodkitError(f"--set {override}: expected path.to.field=value")
    segments = path.split(".")
    message = config
    for depth, segment in enumerate(segments[:-1]):
        message = _descend(message, segment, ".".join(segments[: depth + 1]), override)
    _assign(message, segments[-1], value, path, override)


def apply_overrides(config: Message, overrides: list[str] | tuple[str, ...]) -> None:
    """Apply each override in order."""
    for override in overrides:
        apply_override(config, override)
