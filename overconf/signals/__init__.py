"""Outputs / signals layer: what a trained model says, computed once per (model, input set) and cached.

outputs (logits and penultimate features, the cached ``Outputs``), producers (``SIGNALS``: extra
signals an attack requires, ``SignalContext``, ``cached_signal``), inference (eval-mode model
calls), whitebox (white-box probes of the decision boundary), contexts (``SeedContext``: what one
seed of a study shares), cell_hooks (``CELL_HOOKS``: analyses after each evaluated cell).
Everything above (attacks, calibrations, defenses, metrics, analyses) reads these tensors and
never runs the network again to compute a metric.
"""
