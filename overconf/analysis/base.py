"""What an analysis is: ``run(ctx, params) -> AnalysisResult`` per (seed, model, setting), and an
optional ``combine(results, params)`` over every context of the study (e.g. one table across
settings). Registered in ``ANALYSES`` (one module per analysis, one ``@ANALYSES.register`` line;
its name also in overconf/core/names.py, family ``analysis``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overconf.core.errors import ConfigError
from overconf.core.registry import Registry

if TYPE_CHECKING:  # pandas / matplotlib load only when an analysis runs
    import matplotlib.figure
    import pandas

    from .context import AnalysisContext


@dataclass
class AnalysisResult:
    """What one analysis produced for one context (or, from ``combine``, for the whole study).

    Written by :func:`overconf.analysis.output.write_results` under ``RUN_DIR/analysis/<name>/``:
    rows to ``rows.csv`` (all analyses), each table as CSV (tables named in ``per_sample`` also as
    Parquet), each figure as PNG and to TensorBoard (``RUN_DIR/tensorboard/analysis/...``), and the
    markdown into ``analysis.md``."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """tidy rows like result rows: metric, value (+ source, ...); model, seed, setting and
    analysis are filled in by the runner when missing"""
    tables: dict[str, "pandas.DataFrame"] = field(default_factory=dict)
    per_sample: tuple[str, ...] = ()
    """names of ``tables`` that hold one row per sample (written as Parquet too)"""
    figures: dict[str, "matplotlib.figure.Figure"] = field(default_factory=dict)
    markdown: str = ""
    run_files: dict[str, "pandas.DataFrame"] = field(default_factory=dict)
    """tables written as CSV at the top of the run folder (from ``combine``; each name listed in
    overconf.runner.run_folder.RUN_FILES, e.g. ``dp_audit.csv``)"""
    summary: str = ""
    """a section added to summary.md (from ``combine``; replaced, not repeated, on a re-analysis)"""
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    """anything ``combine`` needs from the per-context runs (not written)"""


class Analysis:
    """Base class of a registered analysis. ``defaults`` lists every parameter with its default:
    a parameter not listed is an error naming the allowed ones (before any training)."""

    name: str = ""
    defaults: dict[str, Any] = {}
    title: str = ""
    """section title in analysis.md"""

    def params(self, given: dict[str, Any] | None, where: str | None = None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "(none)"
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} of analysis '{self.name}' (at "
                              f"'{where or 'analysis.' + self.name}'); allowed: {allowed}")
        return {**self.defaults, **given}

    def check(self, params: dict[str, Any]) -> None:
        """Value checks of the parameters (raise ConfigError); before any training."""

    def run(self, ctx: "AnalysisContext", params: dict[str, Any]) -> AnalysisResult:
        raise NotImplementedError

    def combine(self, results: dict[tuple[int, str, str], AnalysisResult],
                params: dict[str, Any]) -> AnalysisResult | None:
        """Over every (seed, model, setting) of the study, in the study's order; None: nothing."""
        return None


ANALYSES: "Registry[type[Analysis]]" = Registry("analysis")
