"""Factor measures: pure functions of cached outputs (Baluta et al., CCS 2022, seed 000;
arXiv 2209.08615, code teobaluta/etio).

Bias-variance decomposition of the cross-entropy over M models (Yang et al. 2020, as in the
paper): p_bar(x) proportional to exp(mean_m log p_m(x)) (the normalised geometric mean),
bias^2 = mean_x -log p_bar_y(x), variance = mean_x mean_m KL(p_bar(x) || p_m(x)). The identity
mean_x mean_m -log p_m,y(x) = bias^2 + variance holds exactly: mean_m KL(p_bar || p_m) = -log Z(x)
with Z = sum_k exp(mean_m log p_m,k), and -log p_bar_y = -mean_m log p_m,y + log Z. The train
version averages, per point, over the models that trained on it (``mask``).
"""
from __future__ import annotations

import torch

from overconf.metrics.calibration import accuracy, expected_calibration_error, overconfidence_error


def bias_variance(log_probs: torch.Tensor, labels: torch.Tensor,
                  mask: torch.Tensor | None = None) -> tuple[float, float]:
    """(bias^2, variance) of M models' log-probabilities [M, N, K] on labelled points [N];
    ``mask`` [M, N] (bool): the models that count for each point (points no model counts for are
    left out). The mean masked NLL equals bias^2 + variance (module docstring)."""
    lp = log_probs.double().log_softmax(-1)
    w = torch.ones(lp.shape[:2], dtype=torch.float64) if mask is None else mask.double()
    cnt = w.sum(0)
    keep = cnt > 0
    lp, w, cnt, labels = lp[:, keep], w[:, keep], cnt[keep], labels[keep]
    mean_lp = (w[..., None] * lp).sum(0) / cnt[:, None]  # [N, K]: mean_m log p_m
    log_pbar = mean_lp.log_softmax(-1)
    bias2 = -log_pbar.gather(1, labels[:, None]).squeeze(1).mean()
    kl = (log_pbar.exp()[None] * (log_pbar[None] - lp)).sum(-1)  # [M, N]
    variance = ((w * kl).sum(0) / cnt).mean()
    return float(bias2), float(variance)


def train_side(own: list[torch.Tensor], indices: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The train-side table of the paper's TrainBias2 / TrainVar: model m's outputs ``own[m]`` [n_m, K]
    on its training points ``indices[m]`` (pool indices) become ([M, U, K] outputs, [M, U] mask of
    "m trained on point u", [U] unique points), U the union of the training sets. With random splits
    a point is trained on by several models (TrainVar > 0); with disjoint ones by one (TrainVar = 0)."""
    points = torch.unique(torch.cat(indices))
    where = {int(p): i for i, p in enumerate(points)}
    table = torch.zeros(len(own), len(points), own[0].shape[1], dtype=own[0].dtype)
    mask = torch.zeros(len(own), len(points), dtype=torch.bool)
    for m, (out, idx) in enumerate(zip(own, indices)):
        cols = torch.tensor([where[int(p)] for p in idx], dtype=torch.long)
        table[m, cols], mask[m, cols] = out, True
    return table, mask, points


def repeat_bias_variance(first: list[torch.Tensor], extra: list[torch.Tensor], labels: torch.Tensor,
                         blocks: list[slice]) -> list[tuple[float, float]]:
    """The paper's test-side (bias^2, variance) per repeat, over the repeat's M models on its test
    block: ``first[r]`` [N, K] is repeat r's first model on every test block (``labels`` [N],
    repeat r's block ``blocks[r]``), ``extra`` its other M - 1 models on that block, repeat-major."""
    per = len(extra) // len(first)
    return [bias_variance(torch.stack([first[r][b], *extra[r * per:(r + 1) * per]]), labels[b])
            for r, b in enumerate(blocks)]


def nll(log_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy -log p_y (without label smoothing)."""
    lp = log_probs.double().log_softmax(-1)
    return float(-lp.gather(1, labels[:, None]).mean())


def centroid_distance(train_out: torch.Tensor, test_out: torch.Tensor) -> float:
    """The paper's CentroidDistance (Baluta et al. 2022; analyses.md "Causal factors"):
    || mean_{x in train} f(x) - mean_{x in test} f(x) ||_2, the Euclidean distance between the mean
    raw output vector on all training points and on all test points, unconditional on the class."""
    return float((train_out.double().mean(0) - test_out.double().mean(0)).norm())


def centroid_distance_sorted(train_out: torch.Tensor, test_out: torch.Tensor, k: int = 3) -> float:
    """The paper's "sorted_k" variant (k = 3 for the top-3 and MemGuard attacks): the centroid
    distance of the k largest outputs of each point, sorted in decreasing order (all of them when
    there are fewer than k classes)."""
    k = min(k, train_out.shape[1])
    return centroid_distance(train_out.topk(k, dim=1).values, test_out.topk(k, dim=1).values)


def centroid_distance_classwise(train_probs: torch.Tensor, train_labels: torch.Tensor, test_probs: torch.Tensor,
                                test_labels: torch.Tensor) -> float:
    """overconf's class-wise variant: mean over classes k of
    || mean_{train, y=k} p(x) - mean_{test, y=k} p(x) ||_2 (softmax outputs)."""
    out = []
    for k in torch.unique(torch.cat([train_labels, test_labels])).tolist():
        a, b = train_probs[train_labels == k], test_probs[test_labels == k]
        if len(a) and len(b):
            out.append(float((a.double().mean(0) - b.double().mean(0)).norm()))
    return sum(out) / len(out)


def generalisation(train_logits: torch.Tensor, train_labels: torch.Tensor, test_logits: torch.Tensor,
                   test_labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, loss and their gaps, centroid distances (the paper's on raw outputs = logits, its
    sorted_3 variant, overconf's class-wise one on softmax outputs), ECE and overconfidence error (on test)."""
    p_tr, p_te = train_logits.double().softmax(-1), test_logits.double().softmax(-1)
    out = {"train_acc": accuracy(p_tr, train_labels), "test_acc": accuracy(p_te, test_labels),
           "train_loss": nll(train_logits, train_labels), "test_loss": nll(test_logits, test_labels)}
    out["acc_gap"] = out["train_acc"] - out["test_acc"]
    out["loss_gap"] = out["test_loss"] - out["train_loss"]
    out["centroid_distance"] = centroid_distance(train_logits, test_logits)
    out["centroid_distance_sorted3"] = centroid_distance_sorted(train_logits, test_logits, 3)
    out["centroid_distance_classwise"] = centroid_distance_classwise(p_tr, train_labels, p_te, test_labels)
    out["ece"] = expected_calibration_error(p_te, test_labels, n_bins)
    out["overconfidence"] = overconfidence_error(p_te, test_labels, n_bins)
    out["mms_test"] = float(p_te.max(1).values.mean())
    out["mms_train"] = float(p_tr.max(1).values.mean())
    return out


def mean_max_score(logits: torch.Tensor) -> float:
    return float(logits.double().softmax(-1).max(1).values.mean())
