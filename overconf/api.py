"""The public Python API: a study in a notebook, and the study's evaluation on your own model.

    >>> import overconf
    >>> result = overconf.run("experiments/fashion_mnist.yaml", recipe__epochs=5, seeds=[0])
    >>> result.frame                       # pandas DataFrame: one row per (model, seed, setting, attack, source, metric)
    >>> result.scores[(0, "salem_cnn", "baseline")]["max_score"]["test"]   # per-sample scores

Overrides follow the schema of ``--set`` (overconf.config): ``recipe__lr=0.01`` (``__`` for a
dot) or a dict of dotted keys ``{"recipe.lr": 0.01}``; values are Python values (lists, dicts).
The executor is an override too: ``overconf.run(cfg, executor="ray", ray__address="auto")`` (the
CLI's ``--executor ray --ray-address auto``; docs/guide/ray.md).

Bring your own model and data (:func:`overconf.byo.evaluate`, also ``overconf.evaluate``): a trained ``nn.Module`` plus tensors gives the
same rows as a study for the single-model attacks (fitted on a shadow model's members vs
non-members, applied to your model's members vs each named non-member source); nothing is trained
except what an attack trains itself (the salem MLP).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Union

from .config import StudyConfig, apply_overrides, check_not_empty, parse_config
from overconf.core.errors import ConfigError

if TYPE_CHECKING:  # torch and pandas load only when a study or an evaluation runs
    import pandas
    import torch

ConfigLike = Union[str, Path, Mapping[str, Any], StudyConfig, None]


def _set_items(overrides: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> list[str]:
    """``{"recipe.lr": 0.01}`` and ``recipe__lr=0.01`` as ``--set`` items (JSON values are YAML)."""
    items = {str(k): v for k, v in (overrides or {}).items()}
    items |= {k.replace("__", "."): v for k, v in kwargs.items()}
    def plain(o: Any) -> Any:
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (tuple, set)):
            return list(o)
        raise TypeError(f"{type(o).__name__} {o!r} is not plain data")

    try:
        return [f"{k}={json.dumps(v, default=plain)}" for k, v in items.items()]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"an override value is not plain data ({e}); use numbers, strings, lists, dicts") from None


def load(config: ConfigLike = None, overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> StudyConfig:
    """A validated :class:`~overconf.config.StudyConfig` from a YAML path, a raw dict, a config
    object or defaults (None), with overrides applied through the ``--set`` schema."""
    from overconf.runner.validation import load_config, validate_components  # the registries: imports torch

    sets = _set_items(overrides, kwargs)
    if config is None or isinstance(config, (str, Path)):
        return load_config(config, sets)
    if isinstance(config, StudyConfig):
        raw = config.to_dict()
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise ConfigError(f"a study config is a YAML path, a dict or a StudyConfig, got {type(config).__name__}")
    cfg = parse_config(apply_overrides(raw, sets))
    check_not_empty(cfg)
    validate_components(cfg)
    return cfg


@dataclass
class StudyResult:
    """Result rows (``frame``), per-sample scores and where the run was written."""

    rows: list[dict]
    scores: dict[tuple, dict[str, dict[str, "torch.Tensor"]]] = field(default_factory=dict, repr=False)
    """(seed, model, setting) -> attack -> {'members' | source: per-sample scores (higher: member)}"""
    thresholds: dict[tuple, dict[str, float]] = field(default_factory=dict, repr=False)
    """(seed, model, setting) -> attack -> the threshold fitted on the shadow"""
    member_index: dict[tuple, dict[str, "torch.Tensor"]] = field(default_factory=dict, repr=False)
    """(seed, model, setting) -> source -> indices of the members it is compared with"""
    run_dir: Path | None = None
    config: StudyConfig | None = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False)
    """the study runner's result (cells, images), where a study produced this"""

    @property
    def frame(self) -> "pandas.DataFrame":
        """The rows as a DataFrame: model, seed, setting, attack, source, metric, value, then the
        setting's parameters (overconf.config.row_columns)."""
        import pandas as pd

        from overconf.config.row_columns import column_order

        return pd.DataFrame(self.rows, columns=column_order(self.rows))

    @classmethod
    def from_cells(cls, rows: list[dict], cells, **kw) -> "StudyResult":
        key = [(c.seed, c.model, c.setting) for c in cells]
        return cls(rows, {k: c.scores for k, c in zip(key, cells)}, {k: c.thresholds for k, c in zip(key, cells)},
                   {k: c.member_index for k, c in zip(key, cells)}, **kw)


class Study:
    """A study from a config (path, dict, StudyConfig or None for defaults) and overrides.

    ``Study("experiments/fashion_mnist.yaml", recipe__epochs=5).run()``; ``.config`` is the
    validated config (change it with overrides, not in place)."""

    def __init__(self, config: ConfigLike = None, overrides: Mapping[str, Any] | None = None, **kwargs: Any):
        self.config = load(config, overrides, **kwargs)

    def run(self, run_dir: str | Path | None = None, *, write_report: bool = True,
            overwrite: bool = False) -> StudyResult:
        """Train what the cache lacks, evaluate, and write the run folder (``write_report=False``:
        results only in memory, besides config.yaml and status.json)."""
        from overconf.runner.study import run_study

        r = run_study(self.config, run_dir, report=write_report, overwrite=overwrite)
        return StudyResult.from_cells(r.rows, r.cells, run_dir=r.run_dir, config=r.config, raw=r)


def run(config: ConfigLike = None, overrides: Mapping[str, Any] | None = None, *, run_dir: str | Path | None = None,
        write_report: bool = True, overwrite: bool = False, **kwargs: Any) -> StudyResult:
    """Run a study: ``overconf.run("study.yaml", recipe__lr=0.01)`` or ``overconf.run(raw_dict,
    {"recipe.lr": 0.01})``. Returns a :class:`StudyResult` (``.frame``, ``.scores``, ``.run_dir``)."""
    from .config.audit import is_audit
    from .config.factors import is_factors

    if is_factors(config):  # study: causal_factors -> overconf.runner.factors.FactorsResult (.frame: the factor table)
        return run_factors_config(config, overrides, **kwargs)(run_dir, write_report=write_report, overwrite=overwrite)
    if is_audit(config):  # study: audit -> the audit of a user's model (overconf.runner.audit)
        return audit(config, overrides, run_dir=run_dir, write_report=write_report, overwrite=overwrite, **kwargs)
    return Study(config, overrides, **kwargs).run(run_dir, write_report=write_report, overwrite=overwrite)


def analyze(run_dir: str | Path, only: list[str] | str | None = None, overrides: Mapping[str, Any] | None = None,
            **kwargs: Any):
    """Run analyses (overconf.analysis) on a finished run folder: ``overconf.analyze("runs/x",
    only=["vulnerability"], analysis__vulnerability__fprs=[0.01])``. Models and outputs come from
    the run's cache (``cache_dir`` of its config.yaml, relative to the working directory; override
    with ``cache_dir=...``). Returns an :class:`overconf.runner.run_analysis.AnalysisRun` (``.frame``, ``.results``);
    files in ``RUN_DIR/analysis/`` (analysis.md, rows.csv, tables, figures)."""
    return analyze_sets(run_dir, only, _set_items(overrides, kwargs))


def analyze_sets(run_dir: str | Path, only: list[str] | str | None, sets: list[str]):
    """:func:`analyze` with overrides as ``--set`` strings (the CLI's)."""
    from overconf.runner.run_analysis import check_run_folder, run_analyses
    from overconf.runner.seed_jobs import StudyRun
    from overconf.runner.validation import load_config

    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    cfg = load_config(run_dir / "config.yaml", sets)
    names = [n.strip() for n in only.split(",") if n.strip()] if isinstance(only, str) else only
    return run_analyses(StudyRun.from_config(cfg, run_dir), names)


def run_factors_config(config, overrides: Mapping[str, Any] | None = None, **kwargs: Any):
    """A causal-factors study (``study: causal_factors``) from a path, a dict or a FactorsConfig:
    returns ``run(run_dir, write_report=..., overwrite=...)``."""
    from .config.factors import FactorsConfig, read_factors
    from overconf.runner.factors import run_factors

    sets = _set_items(overrides, kwargs)
    if isinstance(config, FactorsConfig):
        config = config.to_dict()
    cfg = read_factors(config, sets) if isinstance(config, (str, Path)) else read_factors(raw=dict(config), overrides=sets)
    return lambda run_dir=None, **kw: run_factors(cfg, run_dir, **kw)


def audit(config: Any = None, overrides: Mapping[str, Any] | None = None, *, factory: Any = None, target: Any = None,
          train: Any = None, members: Any = None, nonmembers: Any = None, public: Any = None,
          run_dir: str | Path | None = None, write_report: bool = True, overwrite: bool = False,
          **kwargs: Any) -> StudyResult:
    """Audit your own trained model (docs/audit.md): ``overconf.audit("audit.yaml")``, or in Python

        >>> overconf.audit(factory=make_model, target=model, members=(x_in, y_in), nonmembers=(x_out, y_out),
        ...                normalize={"mean": [0.286], "std": [0.353]},
        ...                recipe={"optimizer": "adam", "lr": 1e-3, "epochs": 15, "batch_size": 64},
        ...                attacks=["lira", "rmia"], reference={"num_models": 8})

    ``config``: an audit YAML (``study: audit``; its relative paths and ``module:function`` names
    resolve against its folder), a mapping or an AuditConfig; overrides as in :func:`run`
    (``data__eval_size=500``). Objects win over the config: ``factory`` (a callable returning an
    untrained ``nn.Module``), ``target`` (the trained module, its state dict or its file), ``train``
    (your training function, instead of ``recipe``), ``members`` / ``nonmembers`` / ``public``
    ((images, labels), a torchvision-style dataset or an image folder). overconf trains the shadow
    and reference models with your factory and recipe, runs the attacks on every non-member source
    and checks that they mimic the target. Returns a :class:`StudyResult` (``.frame``, ``.run_dir``)."""
    from .config.audit import AuditConfig, read_audit
    from overconf.runner.audit import prepare_audit, run_audit

    sets = _set_items(overrides, kwargs)
    base_dir = Path.cwd()
    if isinstance(config, AuditConfig):
        config = config.to_dict()
    if config is None or isinstance(config, Mapping):
        cfg = read_audit(raw={"study": "audit", **dict(config or {})}, overrides=sets)
    elif isinstance(config, (str, Path)):
        if not Path(config).is_file():
            raise ConfigError(f"audit config '{config}' is not a file; pass an audit YAML (study: audit)")
        cfg, base_dir = read_audit(config, sets), Path(config).resolve().parent
    else:
        raise ConfigError(f"an audit config is a YAML path, a dict or an AuditConfig, got {type(config).__name__}")
    plan = prepare_audit(cfg, base_dir, factory=factory, target=target, train=train, members=members,
                         nonmembers=nonmembers, public=public)
    r = run_audit(plan, run_dir, report=write_report, overwrite=overwrite)
    return StudyResult.from_cells(r.rows, r.cells, run_dir=r.run_dir, config=r.config, raw=r)


__all__ = ["run", "Study", "StudyResult", "load", "analyze", "audit"]
