"""The config schema machinery: typed dataclass sections, value checks, choices, type coercion and the
``key=value`` leaves of a schema. ``segloss.runner.config`` builds the sections and loads configs with it."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from typing import Any

# ``train.device``: ``auto`` (the GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def check_bounds(
    *, positive: dict[str, float] | None = None, non_negative: dict[str, float] | None = None
) -> None:
    """``ConfigError`` naming the first key of ``positive`` that is not > 0 or of ``non_negative`` < 0."""
    for key, value in (positive or {}).items():
        if not value > 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    for key, value in (non_negative or {}).items():
        if not value >= 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")


def check_class_names(key: str, names: Sequence[str], classes: Sequence[str]) -> None:
    """``ConfigError`` unless ``names`` are distinct names of ``classes`` that leave at least two others."""
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ConfigError(
            f"{key} names classes the dataset does not have: {unknown}; its classes: {', '.join(classes)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{key} names a class twice: {list(names)}")
    if len(classes) - len(names) < 2:
        raise ConfigError(f"{key} {list(names)} leaves fewer than two of the classes {', '.join(classes)}")


def check_device(key: str, setting: str) -> None:
    """``ConfigError`` unless ``setting`` is a device setting of ``DEVICE_PATTERN``."""
    if not DEVICE_PATTERN.fullmatch(setting):
        raise ConfigError(f"{key} must be auto, cpu, cuda, cuda:N or mps, got {setting!r}")


def choices(*values: Any, default: Any) -> Any:
    """A dataclass field that accepts only ``values``."""
    return field(default=default, metadata={"choices": values})


def dynamic_choices(values: Callable[[], Iterable[Any]], default: Any) -> Any:
    """A dataclass field that accepts only the values ``values()`` returns when a config is checked (e.g.
    the names registered by then)."""
    return field(default=default, metadata={"choices": values})


def _allowed_values(f: dataclasses.Field) -> tuple[Any, ...] | None:
    allowed = f.metadata.get("choices")
    return tuple(allowed()) if callable(allowed) else allowed


# ---------------------------------------------------------------------------------------------------
# Schema introspection and type checking


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"list[{_type_name(typing.get_args(annotation)[0])}]"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def dataclass_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def schema_keys(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """``(dotted key, type description, default)`` for every leaf of the schema ``cls``."""
    keys = []
    for name, (f, annotation) in dataclass_fields(cls).items():
        if dataclasses.is_dataclass(annotation):
            keys += schema_keys(annotation, f"{prefix}{name}.")
            continue
        described = _type_name(annotation)
        allowed = _allowed_values(f)
        if allowed is not None:
            described = "|".join(str(c) for c in allowed)
            if "also_accepts" in f.metadata:
                described += " or a sum such as ce+0.5*dice"
        if "taken_by" in f.metadata:
            described += f" [{', '.join(f.metadata['taken_by']())}]"
        keys.append((f"{prefix}{name}", described, _default(f)))
    return keys


def valid_keys_text(cls: type, descriptions: dict[str, str] | None = None) -> str:
    """The schema's keys, one per line with type and default, and the key's line of ``descriptions``."""
    rows = schema_keys(cls)
    width = max(len(key) for key, _, _ in rows)
    descriptions = descriptions or {}
    lines = []
    for key, kind, default in rows:
        line = f"  {key:<{width}}  {kind}  (default: {_yaml_scalar(default)})"
        lines.append(line + (f"\n  {'':<{width}}  {descriptions[key]}" if key in descriptions else ""))
    return "\n".join(lines)


def suggest_key(key: str, keys: Sequence[str]) -> str:
    """``; did you mean 'optim.lr'?`` for ``lr`` or ``optim.lrr``, or an empty string."""
    last = key.rsplit(".", 1)[-1]
    same_name = [k for k in keys if k.rsplit(".", 1)[-1] == last]
    close = same_name or difflib.get_close_matches(key, keys, n=1)
    if not close:
        by_last = {k.rsplit(".", 1)[-1]: k for k in keys}
        close = [by_last[name] for name in difflib.get_close_matches(last, list(by_last), n=1)]
    return f"did you mean {' or '.join(repr(k) for k in close[:3])}?" if close else ""


def _yaml_scalar(value: Any) -> str:
    return "null" if value is None else str(value)


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _TypeMismatch(Exception):
    pass


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (int, float, str, bool, None, list[...] and unions of them)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option)
            except _TypeMismatch:
                continue
        raise _TypeMismatch
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _TypeMismatch
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item) for v in value]
    if annotation is type(None):
        if value is None:
            return None
        raise _TypeMismatch
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    raise _TypeMismatch


def build_dataclass(cls: type, data: Any, prefix: str, root_cls: type) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {data!r}")
    fields = dataclass_fields(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        all_keys = [k for k, _, _ in schema_keys(root_cls)]
        sections = [
            name for name, (_, a) in dataclass_fields(root_cls).items() if dataclasses.is_dataclass(a)
        ]
        suggestion = suggest_key(key, all_keys + sections)
        raise ConfigError(
            f"unknown config key {key!r}\nvalid keys:\n{valid_keys_text(root_cls)}\n"
            f"unknown config key {key!r}" + (f"; {suggestion}" if suggestion else "")
        )
    values = {}
    for name, value in data.items():
        f, annotation = fields[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(annotation):
            values[name] = build_dataclass(annotation, value, f"{key}.", root_cls)
            continue
        try:
            values[name] = _coerce(value, annotation)
        except _TypeMismatch:
            raise ConfigError(
                f"{key} must be {_type_name(annotation)}, got {value!r} ({type(value).__name__})\n"
                f"valid keys:\n{valid_keys_text(root_cls)}"
            ) from None
        allowed = _allowed_values(f)
        also_accepted = f.metadata.get("also_accepts", lambda value: False)
        if allowed is not None and values[name] not in allowed and not also_accepted(values[name]):
            raise ConfigError(f"{key} must be one of {'|'.join(map(str, allowed))}, got {value!r}")
    return cls(**values)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 5}}`` → ``{"train.epochs": 5}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
