"""results.schema.json: the JSON Schema (draft 2020-12) of results.json, written next to it with a
version number, so a reader of a run folder knows the fields, their units and that a member is the
positive class (TPR: members flagged / members; FPR: non-members flagged / non-members).

A row is ``model, seed, setting, attack, source, metric, value`` (``overconf.config.row_columns``'s
``ROW_KEYS``) followed by the setting's parameter columns (``arch``, ``recipe.<key>``,
``calibration``, ... - scalars, ``null`` where a parameter does not apply). The unit of ``value``
depends on ``metric``: :data:`UNITS` lists them by pattern, first match wins."""
from __future__ import annotations

import json
from pathlib import Path

from overconf.core.cache import atomic_write_text

SCHEMA_VERSION = 1
"""raised whenever a field is renamed, removed or changes meaning or unit"""

UNITS = [
    ("^n_|_size$|^flagged$|^epochs$|^steps$", "count"),
    ("seconds|_time$|^time", "seconds"),
    ("loss", "nats (mean cross-entropy)"),
    ("^epsilon|^delta$|noise_multiplier", "differential-privacy parameter (dimensionless)"),
    ("wasserstein", "max-score units (a probability difference, in [0, 1])"),
    ("", "fraction in [0, 1] (rates, accuracies, AUROC, probabilities, their intervals; not percent), "
         "or a dimensionless number for other metrics"),
]
"""(regular expression on ``metric``, unit of ``value``), first match wins"""

FIELDS = {
    "model": ("string", "the model's label in the study (its architecture and parameters: columns arch, arch.*)"),
    "seed": ("integer", "the study seed (splits, initialisation, shuffling)"),
    "setting": ("string", "the setting's name (calibration / defense / recipe; its parameters: the columns after value)"),
    "attack": ("string", "the attack's label; '-' for a row about the model itself (accuracy, calibration, confidence)"),
    "source": ("string", "the non-member source the row is evaluated on (test, OOD, noise, GAN...), or for model "
                         "rows the input set (train, test, members, ...); 'shadow': the attack's fit"),
    "metric": ("string", "what value measures; its unit: x-units"),
    "value": (["number", "null"], "the measurement (NaN where undefined), unit by metric (x-units)"),
}


def results_schema() -> dict:
    """The schema of results.json (a list of rows)."""
    scalar = {"type": ["string", "number", "integer", "boolean", "null"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "overconf results.json",
        "version": SCHEMA_VERSION,
        "description": "One row per (model, seed, setting, attack, source, metric). Membership inference is a "
                       "binary test with member = positive: TPR = members flagged / members, FPR = non-members "
                       "flagged / non-members (a false positive is a non-member called a member). Rates are "
                       "fractions in [0, 1], not percent.",
        "type": "array",
        "items": {
            "type": "object",
            "required": list(FIELDS),
            "properties": {k: {"type": t, "description": d} for k, (t, d) in FIELDS.items()},
            "additionalProperties": scalar,
        },
        "x-units": [{"metric_pattern": p, "unit": u} for p, u in UNITS],
        "x-member-is-positive": True,
    }


def write_schema(run_dir: Path) -> Path:
    path = Path(run_dir) / "results.schema.json"
    atomic_write_text(path, json.dumps(results_schema(), indent=1) + "\n")
    return path
