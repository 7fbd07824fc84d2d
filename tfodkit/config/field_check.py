"""Checks every field of a parsed pipeline.config against the support registry; returns one line per problem."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from tfodkit.config.registry import FIELDS, REQUIRED_ONEOFS, FieldRule
from tfodkit.errors import TfodkitError

_PACKAGE = "tfodkit.protos."


def message_key(descriptor: Descriptor) -> str:
    """`Ssd`, `ManualStepLearningRate.LearningRateSchedule`: the registry's name for a message type."""
    return descriptor.full_name.removeprefix(_PACKAGE)


def _is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _is_set(message: Message, field: FieldDescriptor) -> bool:
    if _is_repeated(field):
        return len(getattr(message, field.name)) > 0
    return message.HasField(field.name)


def _shown(field: FieldDescriptor, value: object) -> str:
    """A value written the way pipeline.config writes it."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == FieldDescriptor.TYPE_STRING:
        return f'"{value}"'
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        text = f"{value:.7g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return str(value)


def _comparable(field: FieldDescriptor, value: object) -> object:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return value


def _value_problems(path: str, field: FieldDescriptor, rule: FieldRule, value: object) -> list[str]:
    problems = []
    if rule.allowed is not None and _comparable(field, value) not in rule.allowed:
        supported = ", ".join(_shown(field, _enum_number(field, a)) for a in rule.allowed)
        problems.append(f"{path}: {_shown(field, value)} is not supported by tfodkit (supported: {supported})")
    if rule.minimum is not None and value < rule.minimum:
        problems.append(f"{path}: {_shown(field, value)} is below the minimum {rule.minimum:g}")
    return problems


def _enum_number(field: FieldDescriptor, allowed: object) -> object:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_name[allowed].number
    return allowed


def _unlisted_problem(message: Message, field: FieldDescriptor, path: str) -> str | None:
    """A field missing from the registry is fine only while it is unset or holds its OD API default."""
    if not _is_set(message, field):
        return None
    if field.type == FieldDescriptor.TYPE_MESSAGE or _is_repeated(field):
        oneof = field.containing_oneof
        key = message_key(message.DESCRIPTOR)
        supported = [f.name for f in oneof.fields if f"{key}.{f.name}" in FIELDS] if oneof else []
        hint = f"supported {oneof.name} choices: {', '.join(supported)}" if supported else "remove it"
        return f"{path}: not implemented by tfodkit ({hint}; see docs/config.md)"
    value = getattr(message, field.name)
    if value == field.default_value:
        return None
    return (
        f"{path}: not implemented by tfodkit; only its default {_shown(field, field.default_value)} is "
        f"supported, got {_shown(field, value)} (see docs/config.md)"
    )


def _check_message(message: Message, path: str, problems: list[str]) -> None:
    descriptor = message.DESCRIPTOR
    key = message_key(descriptor)
    for oneof in descriptor.oneofs:
        if f"{key}.{oneof.name}" in REQUIRED_ONEOFS and message.WhichOneof(oneof.name) is None:
            choices = ", ".join(f.name for f in oneof.fields if f"{key}.{f.name}" in FIELDS)
            problems.append(f"{path or '<top level>'}: one of {{{choices}}} is required")
    for field in descriptor.fields:
        field_path = f"{path}.{field.name}" if path else field.name
        rule = FIELDS.get(f"{key}.{field.name}")
        if rule is None:
            problem = _unlisted_problem(message, field, field_path)
            if problem:
                problems.append(problem)
            continue
        if rule.required and not _is_set(message, field):
            problems.append(f"{field_path}: required")
            continue
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_repeated(field):
                for index, item in enumerate(value):
                    _check_message(item, f"{field_path}[{index}]", problems)
            elif _is_set(message, field):
                _check_message(value, field_path, problems)
        elif _is_repeated(field):
            for index, item in enumerate(value):
                problems.extend(_value_problems(f"{field_path}[{index}]", field, rule, item))
        else:
            problems.extend(_value_problems(field_path, field, rule, value))


def field_problems(config: Message, path: str = "") -> list[str]:
    """Every unsupported, missing or out-of-range field of `config` (a whole pipeline config, or the message at
    `path` in one), as `field.path: problem` lines."""
    problems: list[str] = []
    _check_message(config, path, problems)
    return problems


def settings_error(source: str, problems: list[str]) -> TfodkitError:
    """One error for `source` listing its problem lines (field_problems', consistency's), one per line."""
    listing = "\n".join(f"  {problem}" for problem in problems)
    return TfodkitError(f"{source}: {len(problems)} unsupported or invalid setting(s):\n{listing}")
