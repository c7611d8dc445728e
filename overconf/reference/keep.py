"""Balanced keep matrices: which reference model trains on which point.

``keep[i, k]`` is True iff point i is IN the training set of reference model k. LiRA (Carlini et
al. 2022) wants every point IN for exactly half of the models; batched training wants every
model to train on the same number of points. Both hold exactly when the models come in
complementary pairs (as in the RMIA reference code, Zarifzadeh et al. 2024): for each pair a
seeded random half of the points trains the first model and the other half the second.
Pairs are drawn independently, so across pairs memberships are independent.
"""
from __future__ import annotations

import torch


def balanced_keep(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """bool [n, k]: every row holds k / 2 True, every column n / 2 (n and k even)."""
    if k < 2 or k % 2 or n % 2:
        raise ValueError(f"a balanced keep matrix needs an even number of models and points, got k={k}, n={n}")
    keep = torch.zeros(n, k, dtype=torch.bool)
    for pair in range(k // 2):
        first = torch.zeros(n, dtype=torch.bool)
        first[torch.randperm(n, generator=generator)[: n // 2]] = True
        keep[:, 2 * pair], keep[:, 2 * pair + 1] = first, ~first
    return keep
