"""A named component with keyword parameters (a source, attack, calibration, defense or architecture
in the config): ``name`` or ``{name: {param: value}}``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from overconf.core.errors import ConfigError


@dataclass
class Component:
    """A registered component (source, attack, calibration) with its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, value: Any, where: str) -> "Component":
        """``"name"`` or ``{name: ..., param: value, ...}``."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            params = {k: v for k, v in value.items() if k != "name"}
            return cls(value["name"], params)
        raise ConfigError(f"'{where}' must be a name or a mapping with a 'name' key, got {value!r}")
