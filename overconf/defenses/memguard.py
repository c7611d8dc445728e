"""MemGuard (Jia et al., CCS 2019; code jinyuan-jia/MemGuard).

The defender trains its own attack model g (an MLP on the descending-sorted probability vector;
members = the model's training split, non-members = the held-out calibration split; h = g's
pre-sigmoid output). Phase I, for all queries at once: from z = log p (logits up to a row constant)
minimise |h(sort(softmax(z')))| + c2 ReLU(max_{j != k} z'_j - z'_k) + c3 ||softmax(z') - s||_1
by normalised gradient steps z' <- z' - lr grad / ||grad|| (per row), a row succeeding once its
label k is kept and g's decision has crossed 0.5; rounds with c3 = 0.1, 1, 10, ... keep each row's
last success (smallest distortion); a row that never succeeds in the first round is released
unchanged. Phase II: the noisy s' is released with probability min(budget / ||s' - s||_1, 1)
(a seeded Bernoulli per query), else s. The predicted label never changes.
"""
from __future__ import annotations

import torch
from torch import nn

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed, isolated_rng
from .base import DEFENSES, DefenseContext, ReleaseDefense, floor_log

C2 = 10.0
LR = 0.1


def sorted_probs(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs.exp().sort(dim=1, descending=True).values


def train_defender(members: torch.Tensor, nonmembers: torch.Tensor, seed: int, epochs: int = 300,
                   hidden: int = 64) -> nn.Module:
    """g: an MLP on sorted probability vectors, members (1) vs non-members (0), class-balanced
    (the larger set is subsampled, seeded), full-batch Adam."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(members), len(nonmembers))
    if n == 0:
        raise ConfigError("defense memguard needs labelled training and calibration-split outputs; "
                          "set data.splits.calibration > 0")
    mi = torch.randperm(len(members), generator=g)[:n]
    ni = torch.randperm(len(nonmembers), generator=g)[:n]
    x = torch.cat([members[mi], nonmembers[ni]]).double()
    y = torch.cat([torch.ones(n), torch.zeros(n)]).double()
    k = x.shape[1]
    with isolated_rng(seed):  # nn.Linear's default init draws from the global stream: keep it untouched
        model = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                              nn.Linear(hidden, 1)).double()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                bound = 1 / m.in_features ** 0.5
                m.weight.copy_(torch.empty_like(m.weight).uniform_(-bound, bound, generator=g))
                m.bias.copy_(torch.empty_like(m.bias).uniform_(-bound, bound, generator=g))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def phase_one(h: nn.Module, log_probs: torch.Tensor, steps: int, c3_values: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy probability vectors [N, K], success [N]) for all queries at once; rows without a
    success keep s."""
    z0 = log_probs.double()
    s = z0.exp()
    label = z0.argmax(1)
    sign0 = h(sorted_probs(z0)).squeeze(1) >= 0
    best = s.clone()
    success = torch.zeros(len(s), dtype=torch.bool)
    others = torch.ones_like(s, dtype=torch.bool).scatter(1, label[:, None], False)
    for round_, c3 in enumerate(c3_values):
        z = z0.clone().requires_grad_(True)
        done = torch.zeros(len(s), dtype=torch.bool)
        found = torch.zeros(len(s), dtype=torch.bool)
        kept = s.clone()
        for _ in range(steps):
            p = torch.softmax(z, 1)
            hz = h(p.sort(dim=1, descending=True).values).squeeze(1)
            zk = z.gather(1, label[:, None]).squeeze(1)
            zmax = z.masked_fill(~others, float("-inf")).max(1).values
            ok = (z.detach().argmax(1) == label) & ((hz.detach() >= 0) != sign0)
            newly = ok & ~done
            kept[newly] = p.detach()[newly]
            found |= newly
            done |= ok
            if bool(done.all()):
                break
            loss = hz.abs() + C2 * torch.relu(zmax - zk) + c3 * (p - s).abs().sum(1)
            (grad,) = torch.autograd.grad(loss.sum(), z)
            norm = grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
            with torch.no_grad():
                z -= LR * grad / norm * (~done)[:, None]
        best[found] = kept[found]
        success |= found
        if round_ == 0 and not bool(found.any()):
            break
    return best, success


@DEFENSES.register("memguard")
class MemGuard(ReleaseDefense):
    """MemGuard (Jia et al. 2019): label-preserving noise that moves the defender's attack model
    to 0.5, released with probability min(budget / L1, 1)."""

    name = "memguard"
    uses_calibration_split = True

    def __init__(self, budget: float = 0.5, steps: int = 100, c3_rounds: int = 3, epochs: int = 300):
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"defense memguard: {message}")

        need(isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget >= 0,
             f"budget (the expected L1 distortion of the probability vector) must be a number >= 0, got {budget!r}")
        for key, v in (("steps", steps), ("c3_rounds", c3_rounds), ("epochs", epochs)):
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{key} must be a positive integer, got {v!r}")
        self.budget, self.steps, self.epochs = float(budget), steps, epochs
        self.c3_values = tuple(0.1 * 10 ** i for i in range(c3_rounds))
        self.defender: nn.Module | None = None
        self.seed = 0
        self.stats = {"queries": 0, "l1": 0.0, "released_noisy": 0, "phase1_success": 0}

    def fit(self, ctx: DefenseContext) -> "MemGuard":
        known = ctx.calibration_labels >= 0
        self.seed = ctx.seed
        self.defender = train_defender(sorted_probs(ctx.train_log_probs.double()),
                                       sorted_probs(ctx.calibration_log_probs.double()[known]),
                                       derive_seed(ctx.seed, "memguard", "defender"), self.epochs)
        return self

    def defender_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        """g(x): the defender model's member probability [N]."""
        with torch.no_grad():
            return torch.sigmoid(self.defender(sorted_probs(log_probs.double())).squeeze(1))

    def noisy(self, log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s, phase-I noisy s', release mask); the mask is seeded by the defense's seed and the
        content of ``log_probs`` (the same query set gets the same release)."""
        if self.defender is None:
            raise RuntimeError("memguard: call fit() before release()")
        s = log_probs.double().exp()
        noisy, success = phase_one(self.defender, log_probs, self.steps, self.c3_values)
        l1 = (noisy - s).abs().sum(1)
        prob = torch.where(l1 > 0, (self.budget / l1.clamp_min(1e-300)).clamp(max=1.0), torch.ones_like(l1))
        g = torch.Generator().manual_seed(derive_seed(self.seed, "memguard", "release", tensor_digest(log_probs)))
        release = (torch.rand(len(s), generator=g, dtype=torch.float64) < prob) & success
        self._count(s, noisy, release, success)
        return s, noisy, release

    def _count(self, s, noisy, release, success) -> None:
        out = torch.where(release[:, None], noisy, s)
        self.stats["queries"] += len(s)
        self.stats["l1"] += float((out - s).abs().sum())
        self.stats["released_noisy"] += int(release.sum())
        self.stats["phase1_success"] += int(success.sum())

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        if len(log_probs) == 0:
            return log_probs.double()
        s, noisy, release = self.noisy(log_probs)
        out = torch.where(release[:, None], floor_log(noisy), log_probs.double())
        return out

    def describe(self) -> dict:
        n = max(self.stats["queries"], 1)
        return {"budget": self.budget, "mean_l1_distortion": self.stats["l1"] / n,
                "released_noisy_fraction": self.stats["released_noisy"] / n,
                "phase1_success_fraction": self.stats["phase1_success"] / n}
