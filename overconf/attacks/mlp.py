"""The binary attack model of ML-Leaks (Salem et al. 2019) and Shokri et al. (2017)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from overconf.core.seeding import isolated_rng


def train_binary_mlp(x: torch.Tensor, y: torch.Tensor, *, hidden: int, epochs: int, lr: float, batch_size: int,
                     generator: torch.Generator) -> nn.Module:
    """MLP (in -> hidden -> ReLU -> 1) trained with Adam on binary cross-entropy of its logit
    against ``y`` (1 member, 0 non-member); initialisation and batch order drawn from
    ``generator``. Returned in eval mode: its logit is >= 0 iff sigmoid >= 0.5."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with isolated_rng(seed):
        mlp = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(mlp.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            idx = perm[i: i + batch_size]
            loss = F.binary_cross_entropy_with_logits(mlp(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mlp.eval()
