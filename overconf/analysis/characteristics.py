"""Characteristics of members (seed 003: vulnerable points are outliers of their class), measured
on cached outputs, and how well each one predicts vulnerability.

- ``centroid_distance``: ||f_i - c_{y_i}||, f the target's penultimate features, c_k the mean
  feature of the target's training members of class k;
- ``knn_distance``: mean distance to the k nearest other training members in feature space (the
  inverse of a k-NN density; scikit-learn NearestNeighbors);
- ``loss_rank``: rank of the released cross-entropy -log p_y among the members, in [0, 1] (1: the
  largest loss);
- ``misclassified_by_shadow`` (the shadow never trained on the target's members) and
  ``misclassified_by_references``: the fraction of reference models OUT on the point that
  misclassify it.
``auroc_interval``: AUROC of a characteristic for predicting a vulnerability flag
(scikit-learn's roc_auc_score) with a percentile bootstrap interval over members (seeded).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def class_centroids(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float64 [K, D]: mean feature per class (NaN for a class without members)."""
    f = features.double()
    c = torch.full((num_classes, f.shape[1]), math.nan, dtype=torch.float64)
    for k in range(num_classes):
        sel = labels == k
        if sel.any():
            c[k] = f[sel].mean(0)
    return c


def centroid_distance(features: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return (features.double() - centroids[labels.long()]).norm(dim=1)


def knn_distance(query: torch.Tensor, reference: torch.Tensor, k: int, exclude_self: bool = True) -> torch.Tensor:
    """Mean Euclidean distance of each query row to its k nearest reference rows (itself excluded
    when the query rows are the first rows of ``reference``)."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(reference) - int(exclude_self)))
    nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(reference.double().numpy())
    dist, _ = nn.kneighbors(query.double().numpy())
    return torch.from_numpy(dist[:, int(exclude_self):].mean(1))


def nearest(query: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query row's nearest reference row."""
    d = torch.cdist(query.double(), reference.double())
    v, i = d.min(1)
    return v, i


def loss_rank(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Rank of -log p_y in [0, 1] (average ranks for ties; 1: the largest loss)."""
    from scipy.stats import rankdata

    loss = -log_probs.double().gather(1, labels.long()[:, None]).squeeze(1)
    if len(loss) < 2:
        return torch.zeros(len(loss), dtype=torch.float64)
    return torch.from_numpy((rankdata(loss.numpy()) - 1) / (len(loss) - 1))


def misclassified_fraction(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of models (logits [N, K, C] or [N, C]) that misclassify each point, over ``mask`` [N, K]."""
    if logits.dim() == 2:
        return (logits.argmax(1) != labels).double()
    wrong = logits.argmax(-1) != labels[:, None]
    mask = torch.ones_like(wrong) if mask is None else mask.bool()
    return (wrong & mask).sum(1).double() / mask.sum(1).clamp(min=1)


def auroc_interval(values: torch.Tensor, flags: torch.Tensor, generator: torch.Generator, n_boot: int = 200,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """(AUROC, low, high) of ``values`` for predicting ``flags`` (NaN when one class is empty);
    the interval is the percentile bootstrap over members (resamples with one class are skipped)."""
    from sklearn.metrics import roc_auc_score

    v, y = values.double().numpy(), flags.bool().numpy()
    ok = ~np.isnan(v)
    v, y = v[ok], y[ok]
    if y.all() or not y.any():
        return math.nan, math.nan, math.nan
    auc = float(roc_auc_score(y, v))
    idx = torch.randint(0, len(v), (n_boot, len(v)), generator=generator).numpy()
    boots = [roc_auc_score(y[i], v[i]) for i in idx if 0 < y[i].sum() < len(i)]
    if not boots:
        return auc, math.nan, math.nan
    a = (1 - confidence) / 2
    return auc, float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))
