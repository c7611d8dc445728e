"""Randomness only through explicit, seeded generators.

``derive_seed(seed, "splits")`` gives independent, reproducible streams per purpose;
``generator(...)`` wraps it in a ``torch.Generator``; ``isolated_rng`` runs code that must use
torch's global RNG (module init, dropout) from a seed without leaking state to the caller.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed derived from ``seed`` and a purpose path, e.g. (0, "target", "init")."""
    text = "/".join([str(int(seed)), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, *names: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *names))
    return g


@contextlib.contextmanager
def isolated_rng(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed torch's global RNGs inside the block and restore the caller's state afterwards."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda" if devices else "cpu"):
        torch.manual_seed(seed)
        yield
