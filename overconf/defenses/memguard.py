"""MemGuard (Jia et al., CCS 2019; code jinyuan-jia/MemGuard, ``defense_framework.py`` and
``evaluate_nn_attack.py``).

The defender trains its own attack model g (an MLP on the descending-sorted probability vector;
members = the model's training split, non-members = the held-out calibration split; h = g's
pre-sigmoid output, h = 0 <=> g = 0.5).

Phase I, for all queries at once (the authors loop over queries; the update is the same per row):
from z0 = log p (logits up to a row constant, which changes neither the softmax nor the gradient),
s = softmax(z0) and the predicted class k, a round with c3 runs up to ``steps`` normalised gradient
steps z <- z - 0.1 grad / ||grad|| of
L(z) = |h(sort(softmax(z)))| + c2 ReLU(max_{j != k} z_j - z_k) + c3 ||softmax(z) - s||_1 (c2 = 10),
a row stopping at the first step after which its label is kept and g's decision has crossed 0.5
(h's sign differs from h at s, or h = 0). Rounds c3 = 0.1, 1, 10, ... (``c3_rounds``; the authors: 7,
up to 1e5) run while the row's previous round succeeded, keeping its last success (smallest
distortion); a row failing the first round is released unchanged; a row with |g(s) - 0.5| <= 1e-5
is a success as it is. One difference from the authors' code: they sort the logits once and keep
that order during the search, so g's crossing is tested on a vector that may no longer be sorted;
overconf sorts inside h at every step (sorting is a permutation: the same update while the order
holds), so the crossing holds for the sorted vector g and the attacker see. The predicted label
never changes.

Phase II (``release_rule``): ``authors`` (default, ``evaluate_nn_attack.py``): p = 0 when the noisy
s' is not closer to g's 0.5 than s (|g(s) - 0.5| <= |g(s') - 0.5|, g on the sorted vectors), else
p = min(budget / ||s' - s||_1, 1); ``budget``: p = min(budget / ||s' - s||_1, 1) for every phase-I
success (overconf's earlier rule). s' is released with probability p (a seeded Bernoulli per
query), else s. Defaults: the authors' 299 steps (``max_iteration = 300``, ``while j < 300`` from
j = 1) and 7 rounds; overconf's earlier 100 steps and 3 rounds remain options.
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


def sort_desc(p: torch.Tensor) -> torch.Tensor:
    return p.sort(dim=1, descending=True).values


def sorted_probs(log_probs: torch.Tensor) -> torch.Tensor:
    return sort_desc(log_probs.exp())


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
    """(noisy probability vectors [N, K], success [N]) for all queries at once (module docstring);
    rows without a success keep s."""
    z0 = log_probs.double()
    s = z0.exp()
    n = len(s)
    label = z0.argmax(1)
    h0 = h(sort_desc(s)).squeeze(1)
    at_half = (torch.sigmoid(h0) - 0.5).abs() <= 1e-5  # already at 0.5: a success as it is
    best = s.clone()
    success = at_half.clone()
    active = ~at_half  # rows whose every round so far succeeded
    for c3 in c3_values:
        rows = active.nonzero().squeeze(1)  # the rows still searching in this round
        z = z0[rows].clone()
        found = torch.zeros(n, dtype=torch.bool)
        kept = s.clone()
        for _ in range(steps):
            if len(rows) == 0:
                break
            z.requires_grad_(True)
            p = torch.softmax(z, 1)
            k = label[rows, None]
            others = z.scatter(1, k, float("-inf")).max(1).values
            loss = h(sort_desc(p)).squeeze(1).abs() + C2 * torch.relu(others - z.gather(1, k).squeeze(1)) \
                + c3 * (p - s[rows]).abs().sum(1)
            (grad,) = torch.autograd.grad(loss.sum(), z)
            with torch.no_grad():
                z = z - LR * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                p = torch.softmax(z, 1)
                ok = (z.argmax(1) == label[rows]) & (h(sort_desc(p)).squeeze(1) * h0[rows] <= 0)  # label kept, crossed
            kept[rows[ok]] = p[ok]
            found[rows[ok]] = True
            rows, z = rows[~ok], z[~ok]
        best[found] = kept[found]
        success |= found
        active &= found
        if not bool(active.any()):
            break
    return best, success


@DEFENSES.register("memguard")
class MemGuard(ReleaseDefense):
    """MemGuard (Jia et al. 2019): label-preserving noise that moves the defender's attack model
    to 0.5, released with probability min(budget / L1, 1) (``release_rule`` authors: 0 unless it
    brings g closer to 0.5); the authors' 299 steps and 7 rounds of c3 by default."""

    name = "memguard"
    uses_calibration_split = True
    RULES = ("authors", "budget")

    def __init__(self, budget: float = 0.5, steps: int = 299, c3_rounds: int = 7, epochs: int = 300,
                 release_rule: str = "authors"):
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"defense memguard: {message}")

        need(isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget >= 0,
             f"budget (the expected L1 distortion of the probability vector) must be a number >= 0, got {budget!r}")
        for key, v in (("steps", steps), ("c3_rounds", c3_rounds), ("epochs", epochs)):
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{key} must be a positive integer, got {v!r}")
        need(release_rule in self.RULES, f"release_rule must be one of {', '.join(self.RULES)} (authors: no noise "
             f"released unless it brings the defender's score closer to 0.5), got {release_rule!r}")
        self.budget, self.steps, self.epochs, self.release_rule = float(budget), steps, epochs, release_rule
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
        if self.release_rule == "authors":  # p = 0 unless s' is closer to the defender's 0.5 than s
            with torch.no_grad():
                g_noisy = torch.sigmoid(self.defender(sort_desc(noisy)).squeeze(1))
            closer = (g_noisy - 0.5).abs() < (self.defender_scores(log_probs) - 0.5).abs()
            prob = torch.where(closer, prob, torch.zeros_like(prob))
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
