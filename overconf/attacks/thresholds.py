"""Threshold rules for the decision ``score >= threshold``, fitted on shadow scores."""
from __future__ import annotations

import numpy as np
import torch

from ..metrics.membership import roc


def _finite(thr: np.ndarray) -> np.ndarray:
    # sklearn's first threshold is +inf ("flag nothing"); keep it usable as a float
    return np.where(np.isinf(thr), np.nextafter(thr[1] if len(thr) > 1 else 0.0, np.inf), thr)


def youden_threshold(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """The threshold maximising TPR - FPR on the ROC (Youden's J)."""
    fpr, tpr, thr = roc(scores_in, scores_out)
    return float(_finite(thr)[np.argmax(tpr - fpr)])


def accuracy_threshold(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """The threshold maximising accuracy (TP + TN) / (n_in + n_out)."""
    fpr, tpr, thr = roc(scores_in, scores_out)
    n_in, n_out = len(scores_in), len(scores_out)
    return float(_finite(thr)[np.argmax(tpr * n_in + (1 - fpr) * n_out)])


def fpr_threshold(scores_out: torch.Tensor, fpr: float) -> float:
    """The smallest threshold whose FPR on ``scores_out`` is at most ``fpr``."""
    s = torch.sort(scores_out.double(), descending=True).values
    k = int(np.floor(fpr * len(s)))  # at most k non-members may reach the threshold
    if k >= len(s):
        return float(s[-1])
    return float(torch.nextafter(s[k], torch.tensor(np.inf, dtype=torch.float64)))


def mean_member_threshold(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """The mean shadow-member score. With the score -CE this is Yeom et al.'s (CSF 2018) rule:
    member iff the loss is at most the (attacker's estimate of the) mean training loss."""
    return float(scores_in.double().mean())


RULES = {"youden": youden_threshold, "accuracy": accuracy_threshold}
