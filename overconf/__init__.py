"""overconf: do score-based membership inference attacks fire on data a model never saw?

Data flows one way: config -> data splits and sources -> trained models (cached) ->
outputs per (model, source) (cached) -> attacks and metrics (pure functions of tensors)
-> results table, figures, TensorBoard.

Public API (docs/api/index.md; each name loads on first use, so ``import overconf`` stays free
of torch):

- ``overconf.run(config_or_path, **overrides)`` / ``overconf.Study`` -> ``StudyResult``
  (``.frame``: a pandas DataFrame of the rows, ``.scores``, ``.run_dir``); ``overconf.load`` gives
  the validated config;
- ``overconf.analyze(run_dir, only=[...])``: analyses of a finished run (vulnerable samples, ...);
- ``overconf.evaluate(model, members, nonmembers, shadow=...)``: bring your own model and data;
- ``overconf.audit("audit.yaml")`` / ``overconf.audit(factory=..., target=..., members=..., ...)``: audit
  your own model with every attack (reference models trained like it, a mimicry check);
- ``overconf.attacks.get / fit``: attacks on plain logits; ``overconf.metrics``: functional metrics.
"""

__version__ = "0.1.0"

_LAZY = {"run": "overconf.api", "Study": "overconf.api", "StudyResult": "overconf.api", "load": "overconf.api",
         "evaluate": "overconf.byo", "analyze": "overconf.api", "audit": "overconf.api"}
_SUBMODULES = ("attacks", "metrics", "config", "api", "byo")

__all__ = ["run", "Study", "StudyResult", "load", "evaluate", "analyze", "audit", "attacks", "metrics", "__version__"]


def __getattr__(name: str):
    """Lazy access: ``overconf.run`` imports overconf.api, ``overconf.attacks`` the attacks package."""
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"overconf.{name}")
    raise AttributeError(f"module 'overconf' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
