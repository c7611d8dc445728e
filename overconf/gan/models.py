"""DCGAN generator and discriminator (Radford et al. 2016) for any image size and channels, with
an optional class condition: the generator concatenates a class embedding to z, the discriminator
adds a projection term <embed(y), h> to its logit (Miyato & Koyama 2018).

The spatial plan halves the image size while it stays even and >= 8 (28 -> 14 -> 7,
32 -> 16 -> 8 -> 4): the generator starts at the smallest size and doubles it with stride-2
transposed convolutions; the discriminator mirrors it.
"""
from __future__ import annotations

import torch
from torch import nn

from overconf.core.registry import Registry

GANS: Registry = Registry("gan")


def spatial_plan(image_size: int) -> tuple[int, int]:
    """(number of stride-2 stages, starting size) with start * 2**stages == image_size."""
    n, s = 0, image_size
    while s % 2 == 0 and s // 2 >= 4:
        n, s = n + 1, s // 2
    if n == 0:
        from overconf.core.errors import ConfigError

        raise ConfigError(f"DCGAN needs an even image size >= 8, got {image_size}")
    return n, s


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z [N, latent_dim] (+ class y [N]) -> images [N, C, H, W] in [-1, 1]."""

    def __init__(self, *, channels: int, image_size: int, num_classes: int = 0, latent_dim: int = 64,
                 width: int = 32):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.shape = (channels, image_size, image_size)
        n, s = spatial_plan(image_size)
        ch = width * 2 ** (n - 1)
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.project = nn.Sequential(nn.Linear(latent_dim * (2 if num_classes else 1), ch * s * s, bias=False),
                                     nn.Unflatten(1, (ch, s, s)), nn.BatchNorm2d(ch), nn.ReLU(True))
        blocks = []
        for _ in range(n - 1):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        return self.body(self.project(z))


class Discriminator(nn.Module):
    """images [N, C, H, W] in [-1, 1] (+ class y) -> real/fake logits [N]."""

    def __init__(self, *, channels: int, image_size: int, num_classes: int = 0, width: int = 32):
        super().__init__()
        n, s = spatial_plan(image_size)
        layers, ch = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)], width
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        dim = ch * s * s
        self.out = nn.Linear(dim, 1)
        self.embed = nn.Embedding(num_classes, dim) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


@GANS.register("dcgan")
def dcgan(*, channels: int, image_size: int, num_classes: int = 0, width: int = 32,
          latent_dim: int = 64) -> tuple[Generator, Discriminator]:
    """DCGAN (Radford et al. 2016); class-conditional when num_classes > 0 (embedding in G, projection in D)."""
    g = Generator(channels=channels, image_size=image_size, num_classes=num_classes, latent_dim=latent_dim,
                  width=width)
    d = Discriminator(channels=channels, image_size=image_size, num_classes=num_classes, width=width)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
