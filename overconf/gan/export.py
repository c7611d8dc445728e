"""``overconf sample``: write a grid (PNG) and the tensors of samples of a study's generator."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from overconf.core.cache import Cache, atomic_write_bytes
from ..data import load_dataset, make_splits
from overconf.core.errors import ConfigError
from overconf.core.seeding import generator
from .sampling import resolve_classes, sample
from .training import TrainedGenerator, study_generator


@dataclass
class Written:
    grid: Path
    tensors: Path
    trained: TrainedGenerator
    study_seed: int


def parse_classes(text: str | None) -> list | None:
    """'0,Sneaker' -> [0, 'Sneaker']."""
    if not text:
        return None
    return [int(c) if c.strip().isdigit() else c.strip() for c in text.split(",")]


def write_samples(cfg, out: str | Path, *, n: int, device: torch.device, psi: float | None = None,
                  classes: str | None = None, conditional: bool = False, seed: int = 0,
                  study_seed: int | None = None, nrow: int | None = None, progress: bool = True) -> Written:
    """Load (or train, logging to ``out/tensorboard``) the study's generator for ``study_seed``
    (default: the first seed) and write ``n`` samples from latent seed ``seed`` to
    ``out/samples.png`` and ``out/samples.pt`` (uint8 images, labels, z, settings, generator key)."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if psi is not None and psi <= 0:
        raise ConfigError(f"--psi must be > 0 (truncation of z to [-psi, psi]), got {psi}")
    study_seed = cfg.seeds[0] if study_seed is None else study_seed
    ds = load_dataset(cfg.data.dataset, cfg.data.root, cfg.data.download)
    chosen = resolve_classes(parse_classes(classes), ds.classes, conditional, "--classes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = study_generator(cfg.gan, ds, make_splits(ds, cfg.data.splits, study_seed), study_seed, conditional,
                              Cache(cfg.cache_dir), device, progress=progress, log_dir=out / "tensorboard")
    images, labels, z = sample(trained.generator, n, generator=generator(seed, "sample"), device=device, psi=psi,
                               classes=chosen)
    from torchvision.utils import save_image

    nrow = nrow or (len(chosen or ds.classes) if conditional else math.ceil(math.sqrt(n)))
    save_image(images.float() / 255, out / "samples.png", nrow=nrow, padding=1, pad_value=1.0)
    buf = io.BytesIO()
    torch.save({"images": images, "labels": labels, "z": z, "psi": psi, "classes": chosen, "seed": seed,
                "conditional": conditional, "study_seed": study_seed, "generator_key": trained.key}, buf)
    atomic_write_bytes(out / "samples.pt", buf.getvalue())
    return Written(out / "samples.png", out / "samples.pt", trained, study_seed)
