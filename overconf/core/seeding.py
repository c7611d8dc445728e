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
    """Seed torch's global CPU RNG (and ``device``'s, if a CUDA device) inside the block and
    restore the caller's state afterwards.

    Every initialised CUDA device's RNG is forked and restored, and only the generators the block
    uses are seeded: ``torch.manual_seed`` would reseed every CUDA device (also the ones not
    forked, or, before CUDA is initialised, queue a reseed for its initialisation)."""
    device = torch.device(device)
    used = []
    if device.type == "cuda":
        used = [device.index if device.index is not None else torch.cuda.current_device()]
    initialised = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    forked = sorted(set(used) | set(initialised))
    with torch.random.fork_rng(devices=forked, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in used:  # fork_rng has initialised CUDA
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
