"""Latent search beyond the reference study: optimise z so that the target is as confident as
possible on G(z), then count how many of these searched fakes the attacks flag, against the
random fakes the search started from.

Objective on the target's own softmax p = softmax(f(x(G(z)))) (the attacker does not know the
calibration): ``max_score`` maximises max_k log p_k, ``entropy`` minimises H(p) =
-sum_k p_k log p_k. Adam on z; pixels are rounded to uint8 values with a straight-through
gradient, so the optimised images are exactly the ones scored; with truncation ``psi``, z is
projected back onto [-psi, psi]^d after every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attacks import Fitted
from .streaming import FakePipeline, clopper_pearson


def objective(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample loss to minimise: -max_k log p_k or H(p)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    if kind == "max_score":
        return -log_p.max(1).values
    return -(log_p.exp() * log_p).sum(1)


def latent_search(pipeline: FakePipeline, z0: torch.Tensor, y: torch.Tensor | None, *, steps: int, lr: float,
                  kind: str = "max_score", psi: float | None = None) -> tuple[torch.Tensor, list[float]]:
    """The searched latents for one batch ``z0`` (on the device) and the mean loss per step."""
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            logits, _ = pipeline.logits_features(pipeline.inputs(pipeline.pixels(z, y, straight_through=True)))
            loss = objective(logits, kind).mean()
            (z.grad,) = torch.autograd.grad(loss, z)  # no gradients accumulate in the networks
            opt.step()
            if psi is not None:
                with torch.no_grad():
                    z.clamp_(-psi, psi)
            losses.append(loss.detach())
    return z.detach(), [float(v) for v in torch.stack(losses).cpu()]


@dataclass
class SearchResult:
    """Attack decisions on random fakes and on the fakes searched from them."""

    flagged: dict[str, dict[str, int]]
    """'random' | 'searched' -> attack -> flagged count"""
    max_score: dict[str, torch.Tensor]
    """'random' | 'searched' -> calibrated max_k p_k per sample"""
    images: dict[str, torch.Tensor]
    """'random' | 'searched' -> uint8 images (the first batch)"""
    samples: int
    losses: list[float]
    """mean objective per step (first batch)"""
    confidence: float = 0.95

    def fpr(self, kind: str, attack: str) -> float:
        return self.flagged[kind][attack] / self.samples

    def interval(self, kind: str, attack: str) -> tuple[float, float]:
        lo, hi = clopper_pearson(self.flagged[kind][attack], self.samples, self.confidence)
        return float(lo), float(hi)


def search_and_score(pipeline: FakePipeline, fitted: dict[str, Fitted], *, samples: int, batch_size: int,
                     steps: int, lr: float, kind: str, generator: torch.Generator, psi: float | None = None,
                     classes: list[int] | None = None, confidence: float = 0.95) -> SearchResult:
    """Draw ``samples`` random latents, search from each, and score both sets with every attack."""
    from .sampling import class_labels, latent

    gen, device = pipeline.gen, pipeline.device
    flagged = {k: {a: 0 for a in fitted} for k in ("random", "searched")}
    scores: dict[str, list[torch.Tensor]] = {"random": [], "searched": []}
    images: dict[str, torch.Tensor] = {}
    losses: list[float] = []
    for start in range(0, samples, batch_size):
        b = min(batch_size, samples - start)
        z0 = latent(b, gen.latent_dim, generator=generator, psi=psi)
        y = class_labels(b, classes, gen.num_classes, start, device) if gen.conditional else None
        labels = y if y is not None else torch.full((b,), -1, dtype=torch.long, device=device)
        z, batch_losses = latent_search(pipeline, z0, y, steps=steps, lr=lr, kind=kind, psi=psi)
        losses = losses or batch_losses
        with torch.inference_mode():
            for k, zk in (("random", z0), ("searched", z)):
                sig = pipeline.signals(zk, y, labels)
                for a, fit in fitted.items():
                    flagged[k][a] += int(pipeline.flagged(a, fit, sig))
                scores[k].append(sig.max_score.float().cpu())
                if k not in images:
                    images[k] = pipeline.pixels(zk, y).to(torch.uint8).cpu()
    return SearchResult(flagged, {k: torch.cat(v) for k, v in scores.items()}, images, samples, losses, confidence)

