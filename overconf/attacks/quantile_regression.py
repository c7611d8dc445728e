"""Quantile regression of a model's score on its input, for QMIA (Bertran, Tang, Kearns, Morgenstern,
Roth, Wu: "Scalable Membership Inference Attacks via Quantile Regression", NeurIPS 2023).

The regressor q(x, y) predicts, from the image x (and, per class, for the label y), the
tau-quantile of the target's score s(x, y) over non-members: one output per (class, tau), the
label's selected (the authors' ``use_target_dependent_scoring``). Two heads, as in the authors'
code (``train_utils.py``):

- ``pinball``: outputs q_tau for each level tau, trained with the pinball loss
  rho_tau(s - q) = max(tau (s - q), (tau - 1)(s - q)), whose minimiser is the tau-quantile;
  predictions are sorted over the levels so that quantiles never cross;
- ``gaussian``: outputs (mu, log sigma), trained with the Gaussian negative log-likelihood
  log sigma + (s - mu)^2 / (2 sigma^2); the tau-quantile is mu + sigma Phi^-1(tau).

It is trained on public non-member data only (the calibration split, or points of the reserve:
images the target never saw, never the evaluation non-members). Targets are standardised by the
public scores' mean and standard deviation (both heads are equivariant to it) and the outputs
start at the marginal quantiles (pinball) or at N(0, 1) (gaussian). The architecture is a
registered one (SalemCNN, narrower by default) with C x (levels or 2) outputs; initialisation
and shuffling are seeded. A trained regressor is cached by the content of everything that
determines it (public images, labels, the released scores, the specification), like every other
trained artifact.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import torch
from scipy.stats import norm

from overconf.core.cache import Cache, content_key, tensor_digest
from overconf.core.seeding import generator, isolated_rng
from overconf.models import build_model

log = logging.getLogger(__name__)

HEADS = ("pinball", "gaussian")
REGRESSOR_VERSION = 1


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """rho_tau(s - q) = max(tau (s - q), (tau - 1)(s - q)) for predictions ``pred`` [N, Q] of the
    levels ``taus`` [Q] and targets [N]: [N, Q]."""
    d = target[:, None] - pred
    return torch.maximum(taus * d, (taus - 1) * d)


def gaussian_nll(mu: torch.Tensor, log_sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log sigma + (s - mu)^2 / (2 sigma^2), the Gaussian negative log-likelihood without its constant."""
    return log_sigma + 0.5 * torch.exp(-2 * log_sigma) * (target - mu) ** 2


def gaussian_quantile(mu: torch.Tensor, sigma: torch.Tensor, tau: float) -> torch.Tensor:
    """mu + sigma Phi^-1(tau)."""
    return mu + sigma * float(norm.ppf(tau))


@dataclass(frozen=True)
class RegressorSpec:
    """What determines a trained regressor besides its data."""

    head: str = "pinball"
    taus: tuple[float, ...] = (0.99,)
    """the quantile levels of the pinball head (ignored by the gaussian head)"""
    arch: str = "salem_cnn"
    width: int = 16
    hidden: int = 64
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    seed: int = 0

    @property
    def outputs(self) -> int:
        return 2 if self.head == "gaussian" else len(self.taus)


@dataclass
class Regressor:
    """A trained regressor: ``predict(x)`` [N, C, Q] quantiles (pinball) or [N, C, 2] (mu, sigma)."""

    model: torch.nn.Module
    spec: RegressorSpec
    num_classes: int
    center: float
    scale: float
    key: str

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
        self.model.eval()
        out = [self.model(x[i: i + batch_size].to(device)).double().cpu() for i in range(0, len(x), batch_size)]
        raw = (torch.cat(out) if out else torch.zeros(0, self.num_classes * self.spec.outputs, dtype=torch.float64))
        raw = raw.view(len(x), self.num_classes, self.spec.outputs)
        if self.spec.head == "gaussian":
            return torch.stack([self.center + self.scale * raw[..., 0], self.scale * raw[..., 1].exp()], -1)
        # non-crossing quantiles: sorting the levels' predictions is the rearrangement of Chernozhukov,
        # Fernandez-Val and Galichon (2010) on a grid of levels (the authors' rearrange_quantile_fn)
        return self.center + self.scale * raw.sort(-1).values


def regressor_key(spec: RegressorSpec, x: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor) -> str:
    return content_key({"kind": "qmia_regressor", "version": REGRESSOR_VERSION, "spec": asdict(spec),
                        "x": tensor_digest(x), "labels": tensor_digest(labels), "scores": tensor_digest(scores)})


def _build(spec: RegressorSpec, x: torch.Tensor, num_classes: int) -> torch.nn.Module:
    c, h = x.shape[1], x.shape[2]
    with isolated_rng(spec.seed):
        return build_model(spec.arch, in_channels=c, num_classes=num_classes * spec.outputs, image_size=h,
                           width=spec.width, hidden=spec.hidden)


def _per_point(out: torch.Tensor, labels: torch.Tensor, num_classes: int, q: int) -> torch.Tensor:
    """The label's outputs [N, q] of ``out`` [N, C * q]."""
    return out.view(len(out), num_classes, q)[torch.arange(len(out)), labels]


def train_regressor(spec: RegressorSpec, x: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                    num_classes: int, device: torch.device) -> tuple[dict, list[float]]:
    """Fit the regressor of ``spec`` to (x, label) -> score on the public points; returns its state
    (state_dict, center, scale) and the per-epoch mean loss."""
    center, scale = float(scores.mean()), float(scores.std().clamp(min=1e-12))
    t = ((scores - center) / scale).float()
    model = _build(spec, x, num_classes).to(device)
    taus = torch.tensor(spec.taus, dtype=torch.float32, device=device)
    with torch.no_grad():  # start at the marginal quantiles (pinball) or N(0, 1) (gaussian)
        model.head.weight.mul_(0.1)
        start = torch.zeros(spec.outputs) if spec.head == "gaussian" else torch.quantile(t, taus.cpu())
        model.head.bias.copy_(start.repeat(num_classes).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    steps = spec.epochs * -(-len(x) // spec.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    g = generator(spec.seed, "qmia", "batches")
    history = []
    model.train()
    for _ in range(spec.epochs):
        order, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), spec.batch_size):
            b = order[i: i + spec.batch_size]
            xb, yb, tb = x[b].to(device), labels[b].to(device), t[b].to(device)
            pred = _per_point(model(xb), yb, num_classes, spec.outputs)
            if spec.head == "gaussian":
                loss = gaussian_nll(pred[:, 0], pred[:, 1], tb).mean()
            else:
                loss = pinball_loss(pred, tb, taus).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        history.append(total / len(x))
    refit_offsets(model, spec, x, labels, t, num_classes, device)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"state_dict": state, "center": center, "scale": scale}, history


@torch.no_grad()
def refit_offsets(model: torch.nn.Module, spec: RegressorSpec, x: torch.Tensor, labels: torch.Tensor,
                  t: torch.Tensor, num_classes: int, device: torch.device) -> None:
    """The last step, exact: the output offsets (the head's bias per class and output) set to their
    loss minimisers given the rest of the network, on the public points of each class. Pinball: the
    tau-quantile of the residuals t - q(x), the order statistic r_(ceil(n tau)) (the minimiser of
    sum_i rho_tau(r_i - c) over c); gaussian: mu shifted by the 1 / sigma^2-weighted mean residual
    and sigma scaled by the root mean squared standardised residual (the NLL's minimisers over a
    shift of mu and a factor of sigma). Stochastic optimisation leaves the offsets jittering around
    their optimum, and a quantile level is sensitive to exactly that."""
    model.eval()
    out = torch.cat([model(x[i: i + 1024].to(device)).double().cpu() for i in range(0, len(x), 1024)])
    out = out.view(len(x), num_classes, spec.outputs)
    bias = model.head.bias.view(num_classes, spec.outputs)
    for c in range(num_classes):
        mask = labels == c
        if not bool(mask.any()):
            continue
        pred, tc = out[mask, c], t[mask].double()
        if spec.head == "gaussian":
            w = torch.exp(-2 * pred[:, 1])
            shift = float((w * (tc - pred[:, 0])).sum() / w.sum())
            factor = float(((tc - pred[:, 0] - shift) ** 2 * w).mean().sqrt().clamp(min=1e-12))
            bias[c, 0] += shift
            bias[c, 1] += math.log(factor)
        else:
            for j, tau in enumerate(spec.taus):
                r = (tc - pred[:, j]).sort().values
                bias[c, j] += float(r[min(len(r) - 1, max(0, math.ceil(len(r) * tau) - 1))])


def load_or_train_regressor(spec: RegressorSpec, x: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                            num_classes: int, cache: Cache, device: torch.device, name: str = "qmia") -> Regressor:
    """The trained regressor of ``spec`` on the public points (x, labels, scores), from ``cache`` or
    trained and stored (runs sharing a cache wait on its lock and reuse it)."""
    key = regressor_key(spec, x, labels, scores)
    found = cache.load("qmia", key)
    if found is None:
        with cache.lock("qmia", key, name):
            found = cache.load("qmia", key)
            if found is None:
                cache.misses += 1
                start = time.perf_counter()
                state, history = train_regressor(spec, x, labels, scores, num_classes, device)
                found = state | {"history": history, "train_seconds": time.perf_counter() - start}
                cache.save("qmia", key, found)
                log.info("%s: quantile regressor trained on %d public points in %.1f s", name, len(x),
                         found["train_seconds"])
            else:
                cache.hits += 1
    else:
        cache.hits += 1
    model = _build(spec, x, num_classes)
    model.load_state_dict(found["state_dict"])
    return Regressor(model.to(device).eval(), spec, num_classes, float(found["center"]), float(found["scale"]), key)
