"""Logits of many reference models at once (torch.func: stacked parameters + vmap), or one
after another (faster on a CPU, see scripts/bench.py); always in eval mode."""
from __future__ import annotations

import copy

from overconf.core.device import fixed_threads
import torch
from torch import nn
from torch.func import functional_call, vmap

from overconf.core.device import autocast


@torch.inference_mode()
@fixed_threads
def stacked_logits(template: nn.Module, state_dicts: list[dict[str, torch.Tensor]], x: torch.Tensor,
                   device: torch.device, batch_size: int = 1024, vectorize: bool | None = None) -> torch.Tensor:
    """Logits of every model (``template``'s architecture with each state dict) on ``x``:
    float32 [G, N, K] on the CPU. Always in eval mode (dropout off, BatchNorm running statistics),
    whatever mode ``template`` is in; ``template`` itself is not modified. ``vectorize`` (default:
    on CUDA only) runs the G models at once under vmap; otherwise one after another (faster on a
    CPU, see scripts/bench.py)."""
    g = len(state_dicts)
    if vectorize is None:
        vectorize = device.type == "cuda"
    if not vectorize:
        model = copy.deepcopy(template).to(device).eval()
        out = []
        for sd in state_dicts:
            model.load_state_dict(sd)
            chunks = []
            for i in range(0, len(x), batch_size):
                with autocast(device):
                    chunks.append(model(x[i: i + batch_size].to(device, non_blocking=True)).float().cpu())
            out.append(torch.cat(chunks) if chunks else torch.empty(0, template.head.out_features))
        return torch.stack(out) if out else torch.empty(0, len(x), template.head.out_features)
    base = copy.deepcopy(template).to("meta").eval()
    params = {k: torch.stack([sd[k] for sd in state_dicts]).to(device) for k, _ in base.named_parameters()}
    buffers = {k: torch.stack([sd[k] for sd in state_dicts]).to(device) for k, _ in base.named_buffers()}
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), in_dims=(0, 0, None))
    step = max(32, batch_size // max(g, 1))
    out = []
    for i in range(0, len(x), step):
        xb = x[i: i + step].to(device, non_blocking=True)
        with autocast(device):
            out.append(forward(params, buffers, xb).float().cpu())
    if not out:
        return torch.empty(g, 0, template.head.out_features)
    return torch.cat(out, 1)
