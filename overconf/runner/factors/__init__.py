"""The causal-factors study (``study: causal_factors``): Baluta et al., "Membership Inference
Attacks and Generalization: A Causal Perspective" (CCS 2022, seed 000), on overconf's trainer,
cache, data, sources, attacks and MemGuard, with overconfidence as a further factor.

``grid`` (data blocks, models), ``measures`` (bias-variance, generalisation and overconfidence
factors), ``attacks`` (attack accuracies), ``table`` (the factor table), ``causal`` (structure
learning, effects, predictive power), ``report`` (run folder) and ``study`` (:func:`run_factors`).
"""
from overconf.runner.factors.study import FactorsResult, run_factors

__all__ = ["FactorsResult", "run_factors"]
