"""Typed conversion of raw YAML data into the config dataclasses (overconf.config.schema).

Generic over annotations: bool / int / float / str / Any, lists, dicts, optionals and nested
dataclasses. A class with a ``from_config(value, where)`` classmethod parses its own values
(``Component``: a name or a mapping); a field with ``metadata={"parse": fn}`` is parsed by ``fn``
(``settings``: a mapping of named settings). Every error is a ConfigError naming the key.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from overconf.core.errors import ConfigError


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def reject_unknown(data: dict, allowed, where: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        at = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{at}{unknown[0]}'; allowed keys{' in ' + where if where else ''}: "
            f"{', '.join(sorted(allowed))}"
        )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def build(cls, data: Any, where: str):
    """An instance of dataclass ``cls`` from the mapping ``data`` (unknown keys are errors)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{where or 'config'}' must be a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    reject_unknown(data, fields.keys(), where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        parse = fields[name].metadata.get("parse")
        kwargs[name] = parse(value) if parse else convert(hints[name], value, _join(where, name))
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"'{where or 'config'}' is incomplete: {e}") from e


def convert(tp, value: Any, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(inner, value, where)
    if hasattr(tp, "from_config"):
        return tp.from_config(value, where)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is list:
        (inner,) = args
        return [convert(inner, v, f"{where}[{i}]") for i, v in enumerate(as_list(value, where))]
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}")
        number = float(value) if isinstance(value, float) or abs(value) < 2 ** 1023 else math.inf
        if not math.isfinite(number):  # YAML's .inf / .nan: no key of the schema means anything by them
            raise ConfigError(f"'{where}' must be a finite number, got {value}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"config field {where} has unsupported type {tp}")


def as_list(value: Any, where: str) -> list:
    if isinstance(value, (str, dict)) or not isinstance(value, list):
        raise ConfigError(f"'{where}' must be a list, got {value!r}")
    return value


def component_dict(c) -> dict[str, Any]:
    """A component (``name`` + ``params``) as the mapping it is written as."""
    return {"name": c.name, **c.params}


def source_label(c) -> str:
    """A source component's label: its ``label`` parameter, else its name."""
    return str(c.params.get("label", c.name))
