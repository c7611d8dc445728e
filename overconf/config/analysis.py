"""The ``analysis:`` section: analyses run on a finished study's cached models and outputs.

``analysis: {vulnerability: {fprs: [0.01, 0.001]}, causal_memorization: {...}}`` maps a
registered analysis (``overconf.analysis.ANALYSES``; names in overconf.core.names, family
``analysis``) to its parameters. Empty by default: a study without it runs no analysis and no
cache key or result changes. Parameters are checked against the analysis' defaults by the
runner (``overconf.runner.run_analysis.selected``) before any training.
"""
from __future__ import annotations

from typing import Any

from overconf.core.errors import ConfigError
from overconf.core.names import check_name


def parse_analysis(value: Any) -> dict[str, dict[str, Any]]:
    """``{name: {param: value} | null}`` in the order written; torch-free."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"'analysis' must be a mapping of analysis names to parameters, got {value!r}; "
                          f"e.g. analysis: {{vulnerability: {{fprs: [0.01, 0.001]}}}}")
    out = {}
    for name, params in value.items():
        check_name("analysis", name, f"analysis.{name}")
        if not isinstance(params, (dict, type(None))):
            raise ConfigError(f"'analysis.{name}' must be a mapping of parameters or empty, got {params!r}")
        out[str(name)] = dict(params or {})
    return out
