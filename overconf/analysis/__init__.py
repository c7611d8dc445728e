"""Analyses of a study's cached models and outputs (layer between components and report; they
never import the runner): ``ANALYSES`` (one module per analysis), :class:`AnalysisContext` (one
(seed, model, setting)), :class:`AnalysisResult`. Run with ``overconf analyze RUN_DIR`` or a
study's ``analysis:`` section (overconf.runner.run_analysis); the contract is :class:`Analysis`'s docstring.

| analysis | module | what |
|---|---|---|
| ``causal_memorization`` | causal_analysis.py (+ causal_memorization.py, one_run.py, zero_run.py, weighted.py) | seed 001: multi-run, one-run (interference bias), zero-run (IPW / AIPW) causal memorization |
| ``dp_audit`` | dp_audit.py (+ metrics/epsilon_bounds.py, one_run.py) | epsilon lower bounds per source (Clopper-Pearson, one-run) beside the accountant's epsilon |
| ``vulnerability`` | vulnerability.py (+ vulnerable.py, characteristics.py, explain.py) | seed 003: vulnerable members, their characteristics, t-SNE, Grad-CAM, defenses per setting |
"""
from .base import ANALYSES, Analysis, AnalysisResult
from .context import AnalysisContext
from . import vulnerability as _vulnerability  # noqa: F401  (registers "vulnerability")
from . import causal_analysis as _causal  # noqa: F401  (registers "causal_memorization")
from . import dp_audit as _dp_audit  # noqa: F401  (registers "dp_audit")

__all__ = ["ANALYSES", "Analysis", "AnalysisContext", "AnalysisResult"]
