"""Post-cell hooks: analyses that run after a (seed, model, setting) cell has been evaluated.

A hook is registered with ``@CELL_HOOKS.register("name")`` and called by the runner as
``hook(ctx, cell)`` with the seed's :class:`~overconf.signals.contexts.SeedContext` and a frozen
:class:`CellContext` (the cell's target model, its calibration and the attacks fitted on the
shadow). It returns result rows ``(attack, source, metric, value)`` and may leave curves or
images for the report in ``cell.extensions`` (GAN streaming and latent search: overconf.gan.cell_hooks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from overconf.signals.contexts import SeedContext
from overconf.core.registry import Registry

Row = tuple[str, str, str, float]

CELL_HOOKS: "Registry[Callable[[SeedContext, CellContext], list[Row]]]" = Registry("cell hook")


@dataclass(frozen=True, eq=False)
class CellContext:
    """What a post-cell hook may read about one evaluated cell."""

    seed: int
    model: str
    """the model's label"""
    setting: str
    target: Any
    """the target's :class:`~overconf.training.jobs.TrainedClassifier`"""
    target_calibration: Any
    """the target's fitted :class:`~overconf.calibrations.Calibration`"""
    fitted: dict[str, Any]
    """attack label -> the attack fitted on the shadow (:class:`~overconf.attacks.Fitted`)"""
    attacks: tuple[Any, ...]
    """the study's attacks"""
    extensions: dict[str, Any] = field(default_factory=dict)
    """results a hook leaves for the report (e.g. 'stream', 'search')"""


def run_cell_hooks(ctx: SeedContext, cell: CellContext) -> list[Row]:
    """Every registered hook, by name, on one cell."""
    rows: list[Row] = []
    for name in CELL_HOOKS:
        rows += CELL_HOOKS[name](ctx, cell)
    return rows
