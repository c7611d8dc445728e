"""YAML reading for configs and ``--set`` values: YAML 1.2 numbers, duplicate keys are errors.

PyYAML implements YAML 1.1, where ``3e-4``, ``1e4`` and ``1.0e3`` are strings (1.1 floats need a
dot and a signed exponent). :class:`StrictLoader` adds the YAML 1.2 core-schema float pattern
(https://yaml.org/spec/1.2.2/#1032-tag-resolution), so these are numbers, and rejects a key written
twice in one mapping (YAML 1.2 requires keys to be unique) instead of silently keeping the last.
Torch-free: configs are validated before torch is imported.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from overconf.core.errors import ConfigError

_FLOAT_12 = re.compile(r"""^(?:
    [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
  | [-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
  | [-+]?\.(?:inf|Inf|INF)
  | \.(?:nan|NaN|NAN))$""", re.X)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(f"duplicate key '{key}' at line {line} (first written at line {first_line}); "
                         f"write each key once")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 floats + duplicate keys as errors."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: SafeConstructor reports it
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, line, first)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str, where: str) -> Any:
    """Parse ``text``; a syntax error or a duplicate key is a ConfigError naming ``where``."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except DuplicateKeyError as e:
        raise ConfigError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}") from None
