"""Membership-inference metrics at a fixed decision rule ``score >= threshold`` and over the ROC.

Members are positives. ROC, AUROC and AUPR come from scikit-learn on the same scores.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def roc(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the rule ``score >= threshold``, members positive."""
    s_in, s_out = _np(scores_in), _np(scores_out)
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    fpr, tpr, thr = roc_curve(y, np.r_[s_in, s_out], drop_intermediate=False)
    return fpr, tpr, thr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> tuple[float, float]:
    """Highest TPR over ROC points with FPR <= target, and the FPR actually reached there."""
    ok = np.flatnonzero(fpr <= target + 1e-12)
    i = ok[np.argmax(tpr[ok])]
    return float(tpr[i]), float(fpr[i])


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float = 0.95) -> float:
    """Lowest FPR over ROC points with TPR >= target."""
    return float(fpr[tpr >= target - 1e-12].min())


def bootstrap_interval(decisions: torch.Tensor, *, n_boot: int, confidence: float,
                       generator: torch.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 ``decisions``."""
    n = len(decisions)
    if n == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    d = decisions.double()
    means = torch.empty(n_boot, dtype=torch.float64)
    chunk = max(1, 2_000_000 // n)
    for i in range(0, n_boot, chunk):
        b = min(chunk, n_boot - i)
        means[i: i + b] = d[torch.randint(n, (b, n), generator=generator)].mean(1)
    alpha = (1 - confidence) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(lo), float(hi)


def membership_metrics(
    scores_in: torch.Tensor,
    scores_out: torch.Tensor,
    threshold: float,
    *,
    fpr_targets=(0.01, 0.001),
    n_boot: int = 1000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """TPR, FPR, precision, accuracy at the fitted threshold; AUROC, AUPR, FPR at 95% TPR,
    TPR at each FPR target with the FPR reached, and a bootstrap interval for the FPR."""
    s_in, s_out = torch.as_tensor(scores_in).double(), torch.as_tensor(scores_out).double()
    d_in, d_out = s_in >= threshold, s_out >= threshold
    tp, fp = int(d_in.sum()), int(d_out.sum())
    n_in, n_out = len(s_in), len(s_out)
    fpr, tpr, _ = roc(s_in, s_out)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[_np(s_in), _np(s_out)]
    m = {
        "tpr": tp / n_in,
        "fpr": fp / n_out,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "accuracy": (tp + n_out - fp) / (n_in + n_out),
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr_at_95tpr": fpr_at_tpr(fpr, tpr, 0.95),
        "threshold": float(threshold),
        "n_members": n_in,
        "n_nonmembers": n_out,
        "flagged": fp,
    }
    for target in fpr_targets:
        t, f = tpr_at_fpr(fpr, tpr, target)
        m[f"tpr_at_fpr_{target:g}"] = t
        m[f"fpr_reached_{target:g}"] = f
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    m["fpr_ci_low"], m["fpr_ci_high"] = bootstrap_interval(d_out, n_boot=n_boot, confidence=confidence,
                                                           generator=g)
    return m


def mmps(max_in: torch.Tensor, max_out: torch.Tensor, flagged_in: torch.Tensor,
         flagged_out: torch.Tensor) -> dict[str, float]:
    """Mean max prediction score of true/false positives/negatives (Hintersdorf et al. 2022)."""
    def mean(v, mask):
        return float(v[mask].double().mean()) if mask.any() else float("nan")

    return {"mmps_tp": mean(max_in, flagged_in), "mmps_fn": mean(max_in, ~flagged_in),
            "mmps_fp": mean(max_out, flagged_out), "mmps_tn": mean(max_out, ~flagged_out)}
