"""Many small models trained at once in one process (torch.func: stacked parameters + vmap).

The G models of a group share an architecture; their parameters are stacked along a new leading
dimension (``stack_module_state``) and one ``functional_call`` under ``vmap`` runs all of them on
their own batches. The loss is the sum of the models' mean cross-entropies, so each model's
gradient is its own; a single Adam (or SGD) over the stacked tensors is exactly per-model Adam,
because both optimizers act elementwise. Model j sees its own keep subset in its own seeded
order (``derive_seed(seed_j, "batches")``, as in :func:`overconf.training.train_classifier`),
so batched and sequential training of the same job give the same model up to floating-point
reduction order (tested). Dropout under vmap draws different masks per model
(``randomness="different"``) from an isolated, seeded RNG; its masks differ from the sequential
ones. BatchNorm (running statistics mutated in place) is not supported: such models train
sequentially. On CUDA the forward runs under bf16 autocast; inputs stay contiguous (the
stacked 5-d batch has no channels_last layout).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..config import Recipe
from ..device import autocast
from ..seeding import derive_seed, isolated_rng
from ..training import _get_global_rng, _set_global_rng, check_diverged, check_finite, make_optimizer


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class GroupState:
    """Everything needed to continue training a group after ``epoch`` epochs."""

    epoch: int
    params: dict[str, torch.Tensor]
    optimizer: dict
    batch_rngs: list[torch.Tensor]
    global_rng: torch.Tensor
    histories: list[list[dict]] = field(default_factory=list)


def unstack(stacked: dict[str, torch.Tensor], j: int) -> dict[str, torch.Tensor]:
    return {k: v[j].detach().cpu().clone() for k, v in stacked.items()}


def train_batched(
    models: list[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    keep: torch.Tensor,
    recipe: Recipe,
    *,
    seeds: list[int],
    dropout_seed: int,
    device: torch.device,
    resume: GroupState | None = None,
    on_epoch: Callable[[GroupState], None] | None = None,
    progress: bool = True,
    desc: str = "reference group",
) -> tuple[list[dict[str, torch.Tensor]], list[list[dict]]]:
    """Train ``models`` (same architecture, freshly initialised) at once; model j on the points
    ``keep[:, j]`` of ``(x, y)`` with seed ``seeds[j]``. Every keep column must hold the same
    number of points (a balanced keep matrix). Returns each model's state dict and history."""
    if any(has_batchnorm(m) for m in models):
        raise ValueError("batched training does not support BatchNorm models; train them sequentially")
    g = len(models)
    sizes = keep.sum(0)
    if keep.shape[1] != g or len(seeds) != g or not bool((sizes == sizes[0]).all()):
        raise ValueError("train_batched needs one seed and one equal-size keep column per model")
    m, bs = int(sizes[0]), recipe.batch_size
    x, y = x.to(device), y.to(device)
    members = torch.stack([keep[:, j].nonzero().squeeze(1) for j in range(g)]).to(device)  # [G, m]
    params, buffers = stack_module_state([mod.to(device) for mod in models])
    base = copy.deepcopy(models[0]).to("meta")
    base.train()
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), randomness="different")
    optimizer = make_optimizer(list(params.values()), recipe)
    gens = []
    for s in seeds:
        gen = torch.Generator(device=device)
        gen.manual_seed(derive_seed(s, "batches"))
        gens.append(gen)
    histories: list[list[dict]] = [[] for _ in range(g)]
    start = 0
    if resume is not None:
        with torch.no_grad():
            for k, v in params.items():
                v.copy_(resume.params[k].to(device))
        optimizer.load_state_dict(resume.optimizer)
        for gen, state in zip(gens, resume.batch_rngs):
            gen.set_state(state)
        histories, start = [list(h) for h in resume.histories], resume.epoch

    with isolated_rng(dropout_seed, device):
        if resume is not None:
            _set_global_rng(resume.global_rng, device)
        bar = tqdm(range(start, recipe.epochs), desc=desc, disable=not progress, leave=False,
                   initial=start, total=recipe.epochs)
        for epoch in bar:
            t0 = time.perf_counter()
            perms = torch.stack([torch.randperm(m, generator=gen, device=device) for gen in gens])
            order = members.gather(1, perms)  # [G, m] row indices into x, each model its own order
            loss_sum = torch.zeros(g, device=device)
            correct = torch.zeros(g, device=device, dtype=torch.long)
            for i in range(0, m, bs):
                idx = order[:, i: i + bs]
                xb, yb = x[idx], y[idx]  # [G, B, C, H, W], [G, B]
                with autocast(device):
                    out = forward(params, buffers, xb)  # [G, B, K]
                    per = F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none",
                                          label_smoothing=recipe.label_smoothing).view(yb.shape)
                    loss = per.mean(1).sum()  # sum of per-model means: each model gets its own gradient
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += per.detach().float().sum(1)
                correct += (out.detach().argmax(2) == yb).sum(1)
            seconds = time.perf_counter() - t0
            losses, accs = (loss_sum / m).tolist(), (correct.float() / m).tolist()
            for j, loss_j in enumerate(losses):  # before any state is saved
                check_diverged(loss_j, out.shape[-1], epoch + 1, f"{desc}, model {j}", recipe)
            for j in range(g):
                histories[j].append({"epoch": epoch + 1, "loss": losses[j], "accuracy": accs[j],
                                     "seconds": seconds / g})
            bar.set_postfix(loss=f"{sum(losses) / g:.4f}", acc=f"{sum(accs) / g:.3f}")
            if on_epoch is not None:
                on_epoch(GroupState(epoch + 1, {k: v.detach() for k, v in params.items()},
                                    optimizer.state_dict(), [gen.get_state() for gen in gens],
                                    _get_global_rng(device), [list(h) for h in histories]))
    state_dicts = [unstack(params, j) | unstack(buffers, j) for j in range(g)]
    for j, sd in enumerate(state_dicts):  # a non-finite model is never returned, so never cached
        check_finite(sd, f"{desc}, model {j}", recipe)
    return state_dicts, histories


@torch.inference_mode()
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
