"""Running a model beyond its cached outputs (label-only and white-box signals), always in eval
mode with the caller's mode restored afterwards."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from overconf.core.device import autocast, to_device_images


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` in eval mode (no dropout, BatchNorm running statistics); restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.inference_mode()
def predicted_labels(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     batch_size: int = 1024) -> torch.Tensor:
    """argmax_k z_k(transform(x)) as int64 [N] on the CPU (bf16 autocast on CUDA)."""
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = to_device_images(x[i: i + batch_size], device)
            if transform is not None:
                xb = transform(xb)
            with autocast(device):
                out.append(model(xb).argmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
