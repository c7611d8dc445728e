"""Per-sample membership scores as pure, numerically stable functions of log-probabilities.

All inputs are float64 log-probabilities ``lp = log p`` [N, K] and class indices ``y`` [N]
(attacks pass ``Signals.labels_or_predicted``). Nothing here exponentiates a probability that
is close to 1 and then subtracts it from 1: ``log(1 - p_k) = log sum_{j != k} p_j`` is taken as
a log-sum-exp over the other classes wherever ``p_k > 1/2``, so the scores keep their ranking
even for logits that saturate the softmax (members of an overfitted model, scaled inputs).
"""
from __future__ import annotations

import math

import torch

from overconf.core.errors import ConfigError


def finite(score: torch.Tensor) -> torch.Tensor:
    """Map +-inf to the largest finite float64 values (order kept; ROC code rejects infinities)."""
    big = torch.finfo(torch.float64).max
    return torch.nan_to_num(score.double(), nan=math.nan, posinf=big, neginf=-big)


def true_class_log_prob(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p_y = -CE(z, y), for ``lp`` [..., K] and ``y`` [...]."""
    return lp.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)


def log_complement(lp: torch.Tensor) -> torch.Tensor:
    """log(1 - p_k) for every class k, [N, K].

    ``log1p(-p_k)`` is exact enough where ``p_k <= 1/2``; at most one class per row has
    ``p_k > 1/2`` and there ``log(1 - p_k) = logsumexp_{j != k} log p_j`` (no cancellation)."""
    lp = lp.double()
    out = torch.log1p(-lp.exp())
    top = lp.argmax(1)
    others = lp.scatter(1, top[:, None], -math.inf)
    big = lp.gather(1, top[:, None]).squeeze(1) > -math.log(2)
    rows = torch.nonzero(big).squeeze(1)
    out[rows, top[rows]] = torch.logsumexp(others[rows], dim=1)
    return out


def scaled_logit(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """phi = log p_y - log sum_{k != y} p_k (Carlini et al. 2022; seed 003), in float64, for
    ``lp`` [..., K] and ``y`` [...].

    From the log-probabilities of logits z this equals z_y - logsumexp_{k != y} z_k exactly (the
    normaliser cancels, so logits work too), so it stays finite and ordered at any logit scale."""
    lp = lp.double()
    others = lp.scatter(-1, y.long().unsqueeze(-1), -math.inf)
    return true_class_log_prob(lp, y) - torch.logsumexp(others, dim=-1)


def modified_entropy(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Song & Mittal (USENIX Security 2021):
    Mentr(p, y) = -(1 - p_y) log p_y - sum_{k != y} p_k log(1 - p_k); members have low Mentr."""
    lp = lp.double()
    lc = log_complement(lp)
    lp_y, lc_y = true_class_log_prob(lp, y), true_class_log_prob(lc, y)
    # for p_y > 1/2, log p_y = log1p(-(1 - p_y)) keeps the digits that z_y - logsumexp(z) loses
    lp_y = torch.where(lp_y > -math.log(2), torch.log1p(-lc_y.exp()), lp_y)
    own = -lc_y.exp() * lp_y
    terms = -(lp.exp() * lc).scatter(1, y[:, None], 0.0)
    return own + terms.sum(1)


UNLABELLED = ("own_class", "target_class")
"""How reference attacks score an input without a task label (label -1): ``own_class``, every
model (target and reference models alike) at its own predicted class, which equals the max over
classes of the statistic (phi_c and p_c both increase with p_c), so no model's class choice
favours it; ``target_class``, every model at the target's predicted class (the former
behaviour: it favours the target, whose own argmax is scored against a class the reference
models need not predict)."""


def check_unlabelled(attack: str, value: str) -> None:
    if value not in UNLABELLED:
        raise ConfigError(f"attack {attack}: unlabelled '{value}' is not allowed; use one of "
                          f"{', '.join(UNLABELLED)} (how inputs without a task label, e.g. OOD and noise, are scored)")


def at_label(stat, lp: torch.Tensor, labels: torch.Tensor, target_predicted: torch.Tensor,
             unlabelled: str) -> torch.Tensor:
    """``stat(lp, y)`` (e.g. :func:`scaled_logit`, :func:`true_class_log_prob`) for log-probabilities
    ``lp`` [N, ..., C] of one or more models, with y the label where ``labels`` [N] >= 0; for
    unlabelled rows y = ``target_predicted`` [N] (``target_class``) or each model's own argmax of
    ``lp`` (``own_class``)."""
    shape = lp.shape[:-1]
    extra = (1,) * (len(shape) - 1)
    known = (labels >= 0).view(-1, *extra)
    y = torch.where(known, labels.view(-1, *extra), target_predicted.view(-1, *extra)).expand(shape)
    if unlabelled == "target_class":
        return stat(lp, y)
    return torch.where(known, stat(lp, y), stat(lp, lp.argmax(-1)))
