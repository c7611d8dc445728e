"""The factor table's unit of analysis (Baluta et al. 2022, seed 000; analyses.md "Causal factors").

The paper's table has one row per configuration: its factors (accuracies, losses, bias and
variance, centroid distance, ...) and its attack accuracies are averaged over the configuration's
models. ``per_configuration`` builds that table from overconf's per-(configuration, repeat) rows,
so the structure bootstraps and the predictive-power folds resample configurations, never repeats
of one configuration as if they were independent configurations.
"""
from __future__ import annotations

import pandas as pd

KEYS = ("config",)
DROPPED = ("repeat",)


def per_configuration(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``config``: the mean over its rows of every numeric column, the first value of
    every other column (the grid's knobs, constant within a configuration), and ``models``: how
    many rows (models) it averages."""
    numeric = [c for c in frame.columns if c not in KEYS + DROPPED and pd.api.types.is_numeric_dtype(frame[c])]
    other = [c for c in frame.columns if c not in KEYS + DROPPED and c not in numeric]
    groups = frame.groupby("config", sort=True)
    out = groups[numeric].mean()
    if other:
        out = out.join(groups[other].first())
    out["models"] = groups.size()
    return out.reset_index()[["config", *[c for c in frame.columns if c in out.columns], "models"]]


def analysis_rows(frame: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The rows the causal analysis reads: per configuration (the paper's) or per repeat."""
    return per_configuration(frame) if unit == "configuration" else frame


def graph_groups(frame: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per value of the ``by`` columns (the paper: one graph per loss and per weight
    decay, each learned only on its rows); [("", frame)] when pooled."""
    if not by:
        return [("", frame)]
    return [(" ".join(f"{k}={v}" for k, v in zip(by, key if isinstance(key, tuple) else (key,))), rows)
            for key, rows in frame.groupby(list(by), sort=True)]
