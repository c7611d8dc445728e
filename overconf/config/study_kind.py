"""The top-level ``study:`` key: which kind of study a config is (torch-free).

A config without ``study`` is a seeds x models x settings study (overconf.config.schema); ``study:
causal_factors`` is the factor study (overconf.config.factors), ``study: audit`` the audit of a
user's own model (overconf.config.audit). ``overconf run`` and ``overconf.run`` dispatch on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from overconf.core.yamlio import load_yaml
from .convert import check

STUDY_KINDS = ("causal_factors", "audit")


def study_kind(raw: Any) -> str | None:
    """The ``study`` value of a mapping or a YAML path (None: a plain study, or not a readable
    mapping: the study loader reports that); any other value is an error naming the allowed ones."""
    if isinstance(raw, (str, Path)):
        path = Path(raw)
        if not path.is_file():
            return None
        try:
            raw = load_yaml(path.read_text(), f"config file '{path}'")
        except (OSError, UnicodeDecodeError):
            return None
    if not isinstance(raw, Mapping) or "study" not in raw:
        return None
    check(raw["study"] in STUDY_KINDS, f"study: '{raw['study']}' is not a study type; use one of: "
                                      f"{', '.join(f'study: {k}' for k in STUDY_KINDS)} (or leave 'study' out for a "
                                      f"seeds x models x settings study)")
    return raw["study"]
