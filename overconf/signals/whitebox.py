"""White-box probes of the decision boundary around an input (float32 gradients, no autocast).

* :func:`minimal_adversarial_distance`: the norm of the smallest perturbation after which the
  model no longer predicts the label, found by PGD on the margin loss with a per-input binary
  search on the radius (Del Grosso et al. 2022; Kadoche et al. 2022, seed 002). Members sit
  farther from the boundary.
* :func:`local_variation`: the rise of the loss over an epsilon-ball around x, divided by epsilon,
  a proxy of the model's local total variation near x (our reading of seed 002; see its docstring).

Distances are measured in the model's input space (normalized pixels), unconstrained by the
pixel range, so transformed sources (scaled, unnormalized, noise) are probed the same way.
Everything runs in eval mode, batched over inputs, each input with its own radius interval.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from overconf.core.device import to_device_images
from overconf.core.errors import ConfigError
from overconf.signals.inference import eval_mode

NORMS = ("l2", "linf")


def _float32(device: torch.device):
    """No autocast, even inside a caller's autocast region: searches need float32 gradients."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"adversarial norm '{norm}' is not allowed; use one of: {', '.join(NORMS)}")


def _norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _step(delta: torch.Tensor, grad: torch.Tensor, alpha: torch.Tensor, radius: torch.Tensor,
          norm: str) -> torch.Tensor:
    """One projected ascent step: steepest ascent of size alpha for the norm, then back into the
    ball of ``radius``."""
    if norm == "l2":
        g = grad / _view(grad.flatten(1).norm(dim=1).clamp_min(1e-30), grad)
        delta = delta + _view(alpha, delta) * g
        scale = (radius / _norm(delta, "l2").clamp_min(1e-30)).clamp(max=1.0)
        return delta * _view(scale, delta)
    delta = delta + _view(alpha, delta) * grad.sign()
    r = _view(radius, delta)
    return torch.maximum(torch.minimum(delta, r), -r)


def margin(logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """max_{k != c} z_k - z_c: positive iff the prediction has left class c."""
    z_c = logits.gather(1, cls[:, None]).squeeze(1)
    return logits.scatter(1, cls[:, None], -math.inf).amax(1) - z_c


def pgd_flip(model, x: torch.Tensor, cls: torch.Tensor, radius: torch.Tensor, steps: int,
             norm: str) -> torch.Tensor:
    """PGD on the margin loss within the ball of ``radius`` (per input) around x. Returns the
    perturbation norm of the first iterate that changed the prediction away from ``cls``, inf where
    none did (inputs leave the batch once they flip). Step size 2.5 * radius / steps (Madry et al.
    2018), start at x."""
    found = torch.full((len(x),), math.inf, device=x.device)
    todo = torch.arange(len(x), device=x.device)
    alpha = 2.5 * radius / steps
    delta = torch.zeros_like(x)
    for i in range(steps + 1):
        d = delta[todo].requires_grad_(i < steps)
        m = margin(model(x[todo] + d), cls[todo])
        flipped = m.detach() > 0
        found[todo[flipped]] = _norm(d.detach()[flipped], norm)
        if i == steps or bool(flipped.all()):
            break
        (grad,) = torch.autograd.grad(m.sum(), d)
        keep = ~flipped
        todo = todo[keep]
        delta[todo] = _step(d.detach()[keep], grad[keep], alpha[todo], radius[todo], norm)
    return found


def _search(model, x: torch.Tensor, cls: torch.Tensor, max_radius: float, search_steps: int, pgd_steps: int,
            norm: str) -> torch.Tensor:
    hi = pgd_flip(model, x, cls, torch.full((len(x),), max_radius, device=x.device), pgd_steps, norm)
    found = torch.isfinite(hi)
    hi = torch.where(found, hi, torch.full_like(hi, max_radius))
    lo = torch.zeros_like(hi)
    active = torch.nonzero(found & (hi > 0)).squeeze(1)  # hi = 0: x itself is not predicted as cls
    for _ in range(search_steps):
        if len(active) == 0:
            break
        r = (lo[active] + hi[active]) / 2
        d = pgd_flip(model, x[active], cls[active], r, pgd_steps, norm)
        ok = torch.isfinite(d)
        hi[active] = torch.where(ok, torch.minimum(hi[active], d), hi[active])
        lo[active] = torch.where(ok, lo[active], r)
    return hi


def minimal_adversarial_distance(model, x: torch.Tensor, device: torch.device, labels: torch.Tensor | None = None,
                                 *, norm: str = "l2", max_radius: float = 10.0, search_steps: int = 6,
                                 pgd_steps: int = 5, batch_size: int = 500) -> torch.Tensor:
    """Per input, the norm of the smallest perturbation found after which the model no longer
    predicts the label, float64 [N]: 0 for a misclassified input (it is adversarial already); where
    ``labels`` is None or -1, the label is the model's own prediction at x (the distance to the
    decision boundary).

    PGD (``pgd_steps``, margin loss) first at ``max_radius``: where it changes the prediction the
    norm reached is an upper bound, refined by ``search_steps`` bisections of [lo, hi] (PGD at the
    midpoint: success lowers hi to the norm reached, failure raises lo). The result is hi, within
    hi - lo <= max_radius / 2**search_steps of the boundary PGD can find. Where PGD finds nothing
    within ``max_radius`` (far from any boundary, e.g. saturated scaled inputs), the result is
    ``max_radius`` itself: a censored value, "at least this far"."""
    _check_norm(norm)
    if max_radius <= 0 or search_steps < 0 or pgd_steps < 1 or batch_size < 1:
        raise ConfigError("adversarial distance needs max_radius > 0, search_steps >= 0, pgd_steps >= 1 "
                          "and batch_size >= 1")
    out = []
    with eval_mode(model), torch.enable_grad(), _float32(device):
        for i in range(0, len(x), batch_size):
            xb = to_device_images(x[i: i + batch_size], device).float()
            with torch.no_grad():
                cls = model(xb).argmax(1)
            if labels is not None:
                yb = labels[i: i + batch_size].to(cls.device)
                cls = torch.where(yb >= 0, yb, cls)
            out.append(_search(model, xb, cls, max_radius, search_steps, pgd_steps, norm).double().cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def local_variation(model, x: torch.Tensor, labels: torch.Tensor, device: torch.device, *,
                    epsilon: float = 0.5, steps: int = 1, norm: str = "l2",
                    batch_size: int = 500) -> torch.Tensor:
    """Local variation of the loss around x at scale epsilon, float64 [N]:

        LV_eps(x) = (max_{||delta|| <= eps} CE(x + delta, y) - CE(x, y)) / eps,

    the max taken by ``steps`` PGD ascent steps (steps = 1: one normalized-gradient step of length
    eps, so LV -> ||grad_x CE||_dual as eps -> 0). y is the label, the predicted class where the
    label is -1. A small LV means a flat loss around x: members. This is a documented proxy of the
    "total variation of the model near its training samples" of Kadoche et al. (2022, seed 002);
    its match to the paper's exact quantity is unconfirmed."""
    _check_norm(norm)
    if epsilon <= 0 or steps < 1 or batch_size < 1:
        raise ConfigError("local variation needs epsilon > 0, steps >= 1 and batch_size >= 1")
    out = []
    with eval_mode(model), torch.enable_grad(), _float32(device):
        for i in range(0, len(x), batch_size):
            xb = to_device_images(x[i: i + batch_size], device).float()
            yb = labels[i: i + batch_size].to(xb.device)
            with torch.no_grad():
                z = model(xb)
            yb = torch.where(yb >= 0, yb, z.argmax(1))
            base = F.cross_entropy(z, yb, reduction="none")
            eps = torch.full((len(xb),), float(epsilon), device=xb.device)
            alpha = eps if steps == 1 else 2.5 * eps / steps
            delta = torch.zeros_like(xb, requires_grad=True)
            best = base.clone()
            for _ in range(steps):
                loss = F.cross_entropy(model(xb + delta), yb, reduction="none")
                best = torch.maximum(best, loss.detach())
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                delta = _step(delta.detach(), grad, alpha, eps, norm).requires_grad_(True)
            with torch.no_grad():
                best = torch.maximum(best, F.cross_entropy(model(xb + delta), yb, reduction="none"))
            out.append(((best - base) / epsilon).double().cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)
