"""RMIA's signal and aggregation as its authors configure them (Zarifzadeh, Liu, Chang, Shokri,
"Low-Cost High-Power Membership Inference Attacks", ICML 2024; research code:
privacytrustlab/ml_privacy_meter, commit d327341, ``research/2024_rmia``).

**Soft-margin Taylor softmax** (``signals.py``: ``convert_signals(metric="taylor-soft-margin")``
and ``get_taylor``; the attack configs' ``signal: sm_taylor_softmax_relative``). With logits z,
temperature T, soft margin m and n terms of the Taylor expansion of exp,

    e_n(v) = sum_{i=0}^{n-1} v^i / i!          (``get_taylor(v, n)`` = 1 + v + v^2/2! + ... + v^{n-1}/(n-1)!)
    v_k = z_k / T
    Pr(y | x) = e_n(v_y - m) / ( sum_{k != y} e_n(v_k) + e_n(v_y - m) )

With n = 0, e = exp (the soft-margin softmax, ``metric="soft-margin"``); with m = 0 as well,
the temperature softmax. The authors' defaults (``attack_configs/cifar10/rmia_*.yaml``):
``temperature: 2.0``, ``taylor_m: 0.6``, ``taylor_n: 4`` (so e_4 is a cubic, which is negative for
v below about -1.596: their code takes it as it is, and so does this one). Their code applies it to
the raw logits of every model; a model that releases probabilities only (overconf's target:
``Signals.log_probs``, calibrated) gives its logits up to a shift, so z here is the centred
logit vector z_k = log p_k - (1/C) sum_j log p_j, for the target and the reference models alike
(e = exp does not depend on the shift; the Taylor polynomial does).

**Trimmed mean over the reference models** (``main.py``, ``aggregate_signals``:
``mean_x = trim_mean(ref_signals, proportiontocut=0.2, axis=0)``, ``scipy.stats.trim_mean``): per
point, the g = floor(0.2 n) smallest and g largest of its n reference probabilities are cut and
the rest averaged; online over all reference models, offline over the OUT models, then
((1 + a) / 2) mean + (1 - a) / 2.
"""
from __future__ import annotations

import math

import torch

from overconf.core.errors import ConfigError


def taylor_exp(v: torch.Tensor, n: int) -> torch.Tensor:
    """e_n(v) = sum_{i=0}^{n-1} v^i / i! (the authors' ``get_taylor(v, n)``: n terms)."""
    out = torch.ones_like(v)
    term = torch.ones_like(v)
    for i in range(1, n):
        term = term * v / i  # v^i / i!
        out = out + term
    return out


def centred_logits(lp: torch.Tensor) -> torch.Tensor:
    """z_k = log p_k - (1/C) sum_j log p_j [..., C]: the logits a probability vector determines, up to
    the shift that this fixes (mean zero); equal for logits and their log-softmax."""
    lp = lp.double()
    return lp - lp.mean(-1, keepdim=True)


def soft_margin_probability(lp: torch.Tensor, y: torch.Tensor, temperature: float = 1.0, margin: float = 0.0,
                            taylor_n: int = 0) -> torch.Tensor:
    """Pr(y | x) = e(v_y - m) / (sum_{k != y} e(v_k) + e(v_y - m)), v = z / T, for log-probabilities
    (or logits) ``lp`` [..., C] and classes ``y`` [...]; e = exp (``taylor_n`` 0) or e_n."""
    v = centred_logits(lp) / temperature
    y = y.long().unsqueeze(-1)
    v_y = v.gather(-1, y) - margin
    if not taylor_n:  # in log space: exp(v_y - m - logsumexp(v with v_y - m in place of v_y))
        return (v_y - torch.logsumexp(v.scatter(-1, y, v_y), -1, keepdim=True)).exp().squeeze(-1)
    e = taylor_exp(v, taylor_n)
    e_y = taylor_exp(v_y, taylor_n)
    return (e_y / (e.sum(-1, keepdim=True) - e.gather(-1, y) + e_y)).squeeze(-1)


def trimmed_mean(values: torch.Tensor, proportion: float, include: torch.Tensor | None = None) -> torch.Tensor:
    """``scipy.stats.trim_mean(row[include_row], proportion)`` for every row of ``values`` [N, K]:
    of the row's n included values the g = floor(proportion * n) smallest and g largest are cut and
    the rest averaged (``include`` None: all K). A row with no included value gives 0."""
    v = values.double()
    include = torch.ones_like(v, dtype=torch.bool) if include is None else include
    n = include.sum(-1)
    g = (proportion * n.double()).floor()
    ordered = torch.where(include, v, math.inf).sort(-1).values
    rank = torch.arange(v.shape[-1], dtype=torch.float64)
    kept = (rank >= g[:, None]) & (rank < (n - g)[:, None])
    total = torch.where(kept, ordered, 0.0).sum(-1)
    return total / kept.sum(-1).clamp(min=1)


def check_signal_options(attack: str, temperature: float, margin: float, taylor_n: int, trim: float) -> None:
    """One clear error per bad value of RMIA's signal / aggregation options."""
    for key, value in (("temperature", temperature), ("taylor_m", margin), ("trim", trim)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"attack {attack}: {key} must be a number, got {value!r}")
    if not temperature > 0:
        raise ConfigError(f"attack {attack}: temperature must be > 0, got {temperature}")
    if not math.isfinite(margin):
        raise ConfigError(f"attack {attack}: taylor_m (the soft margin) must be a finite number, got {margin}")
    if isinstance(taylor_n, bool) or not isinstance(taylor_n, int) or taylor_n < 0 or taylor_n == 1:
        raise ConfigError(f"attack {attack}: taylor_n must be 0 (exp itself) or an integer >= 2 (the number of "
                          f"terms of the Taylor expansion of exp; the authors use 4), got {taylor_n!r}")
    if not 0 <= trim < 0.5:
        raise ConfigError(f"attack {attack}: trim (the proportion cut from each end of the reference models' "
                          f"probabilities, scipy's proportiontocut) must lie in [0, 0.5), got {trim}")
