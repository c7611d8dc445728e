"""Seeded latent draws, truncation and class selection, and generator outputs as uint8 images.

Truncation (the truncation trick, Brock et al. 2019): with ``psi`` set, every latent coordinate
is drawn from N(0, 1) truncated to [-psi, psi] by the inverse CDF,
z = Phi^-1(Phi(-psi) + u (1 - 2 Phi(-psi))), u ~ U(0, 1): smaller psi, more typical samples.
"""
from __future__ import annotations

import torch

from overconf.core.device import autocast
from overconf.core.errors import ConfigError


def latent(n: int, dim: int, *, generator: torch.Generator, psi: float | None = None,
           device: torch.device | str | None = None) -> torch.Tensor:
    """z [n, dim] ~ N(0, I), or truncated to [-psi, psi]^dim, drawn from ``generator`` (on its device)."""
    device = generator.device if device is None else device
    if psi is None:
        return torch.randn(n, dim, generator=generator, device=device)
    lo = torch.special.ndtr(torch.tensor(-float(psi), dtype=torch.float64)).item()
    u = torch.rand(n, dim, generator=generator, device=device, dtype=torch.float64)
    return torch.special.ndtri(lo + u * (1 - 2 * lo)).clamp_(-psi, psi).float()


def resolve_classes(classes, class_names: list[str], conditional: bool, where: str) -> list[int] | None:
    """Class indices from indices or names; None = every class (or unconditional)."""
    if classes is None:
        return None
    if not conditional:
        raise ConfigError(f"{where}: classes need the class-conditional generator; use fake_conditional "
                          f"(or --conditional)")
    out = []
    for c in classes:
        if isinstance(c, str) and c in class_names:
            out.append(class_names.index(c))
        elif isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(class_names):
            out.append(c)
        else:
            raise ConfigError(f"{where}: unknown class {c!r}; use indices 0..{len(class_names) - 1} or names: "
                              f"{', '.join(class_names)}")
    if not out:
        raise ConfigError(f"{where}: classes must not be empty")
    return out


def class_labels(n: int, classes: list[int] | None, num_classes: int, start: int = 0,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Labels cycling through ``classes`` (every class when None): balanced, no randomness."""
    pool = torch.as_tensor(classes if classes is not None else range(num_classes), device=device)
    return pool[(torch.arange(n, device=device) + start) % len(pool)]


def to_uint8(g: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 pixels (as stored images are)."""
    return ((g.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


@torch.inference_mode()
def generate(gen: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None, device: torch.device,
             batch_size: int = 1024) -> torch.Tensor:
    """uint8 images [N, C, H, W] on the CPU of ``gen`` at ``z`` (and classes ``y``), in eval mode."""
    gen.eval()
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i: i + batch_size].to(device)
        yb = y[i: i + batch_size].to(device) if y is not None else None
        with autocast(device):
            out.append(to_uint8(gen(zb, yb)).cpu())
    return torch.cat(out) if out else torch.empty(0, *gen.shape, dtype=torch.uint8)


def sample(gen: torch.nn.Module, n: int, *, generator: torch.Generator, device: torch.device,
           psi: float | None = None, classes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(uint8 images, labels, z) of ``n`` samples; labels are -1 for an unconditional generator.

    z is drawn on ``generator``'s device in one go, so the samples do not depend on batching."""
    z = latent(n, gen.latent_dim, generator=generator, psi=psi)
    y = class_labels(n, classes, gen.num_classes) if gen.conditional else None
    images = generate(gen, z, y, device)
    labels = y if y is not None else torch.full((n,), -1, dtype=torch.long)
    return images, labels, z.cpu()
