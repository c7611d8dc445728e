"""Many small models trained at once in one process (torch.func: stacked parameters + vmap).

The G models of a group share an architecture; their parameters are stacked along a new leading
dimension (``stack_module_state``) and one ``functional_call`` under ``vmap`` runs all of them on
their own batches. The loss is the sum of the models' mean cross-entropies, so each model's
gradient is its own; a single Adam (or SGD) over the stacked tensors is exactly per-model Adam,
because both optimizers act elementwise. Model j sees its own keep subset in its own seeded
order (``derive_seed(seed_j, "batches")``, as in :func:`overconf.training.train_classifier`),
with the same hooks, loss function and step (:mod:`.step`) as the single loop, so batched and sequential training of the same job give the same model up to floating-point
reduction order (tested). Dropout under vmap draws different masks per model
(``randomness="different"``) from an isolated, seeded RNG; its masks differ from the sequential
ones. BatchNorm (running statistics mutated in place) is not supported: such models train
sequentially (under DP-SGD they are GroupNorm models, :meth:`TrainingHooks.prepare_model`). The
hooks' :meth:`~.hooks.TrainingHooks.group_batches` give each step's [G, B] indices; rows -1 are
padding (Poisson batches of different sizes: batched DP-SGD), masked out of the loss and the
statistics and flagged in :attr:`Batch.mask`; :attr:`Batch.functional` lets per-sample gradient
hooks call each model functionally. On CUDA the forward runs under bf16 autocast; inputs stay contiguous (the
stacked 5-d batch has no channels_last layout).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields
from typing import Callable

from overconf.core.device import fixed_threads
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..config import Recipe
from overconf.core.device import autocast
from overconf.core.seeding import derive_seed, isolated_rng
from .hooks import DEFAULT_HOOKS, Batch, TrainingHooks
from .step import check_diverged, check_finite, get_global_rng, make_optimizer, optimizer_step, set_global_rng


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


def is_group_state(stored: dict) -> bool:
    """The structure of a stored :class:`GroupState` (a group's ``partial`` cache entry): its fields."""
    return (stored.keys() == {f.name for f in fields(GroupState)} and isinstance(stored["epoch"], int)
            and isinstance(stored["params"], dict) and isinstance(stored["batch_rngs"], list))


def unstack(stacked: dict[str, torch.Tensor], j: int) -> dict[str, torch.Tensor]:
    return {k: v[j].detach().cpu().clone() for k, v in stacked.items()}


@fixed_threads
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
    hooks: TrainingHooks = DEFAULT_HOOKS,
) -> tuple[list[dict[str, torch.Tensor]], list[list[dict]]]:
    """Train ``models`` (same architecture, freshly initialised) at once; model j on the points
    ``keep[:, j]`` of ``(x, y)`` with seed ``seeds[j]``. Every keep column must hold the same
    number of points (a balanced keep matrix). ``hooks`` as in
    :func:`~overconf.training.loop.train_classifier`; ``hooks.stop`` gets the :class:`GroupState`
    and stops the whole group. Returns each model's state dict and history."""
    if any(has_batchnorm(m) for m in models):
        raise ValueError("batched training does not support BatchNorm models; train them sequentially")
    if any(hasattr(m, "init_from_data") for m in models):
        raise ValueError("batched training does not run data-dependent inits (init_from_data); train such "
                         "models sequentially (reference.mode: sequential)")
    if recipe.flip or recipe.translate or recipe.ema or recipe.triangular:
        raise ValueError("batched training does not support the fast-recipe keys (flip, translate, ema, "
                         "triangular); train sequentially (reference.mode: sequential)")
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
    param_list = list(params.values())
    optimizer = make_optimizer(param_list, recipe)
    loss_fn = hooks.loss(recipe)
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
            set_global_rng(resume.global_rng, device)
        bar = tqdm(range(start, recipe.epochs), desc=desc, disable=not progress, leave=False,
                   initial=start, total=recipe.epochs)
        for epoch in bar:
            t0 = time.perf_counter()
            loss_sum = torch.zeros(g, device=device)
            correct = torch.zeros(g, device=device, dtype=torch.long)
            seen = torch.zeros(g, device=device, dtype=torch.long)
            for step in hooks.group_batches(m, bs, gens, device):  # [G, B], each model its own order
                valid = step >= 0  # -1: a padding row (Poisson batches of different sizes)
                padded = not bool(valid.all())
                idx = members.gather(1, step.clamp(min=0))  # [G, B] row indices into x
                xb, yb = x[idx], y[idx]  # [G, B, C, H, W], [G, B]
                with autocast(device):
                    out = forward(params, buffers, xb)  # [G, B, K]
                    per = loss_fn(out.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape)
                    if padded:
                        per = per * valid
                        loss = (per.sum(1) / valid.sum(1).clamp(min=1)).sum()
                    else:
                        loss = per.mean(1).sum()  # sum of per-model means: each model gets its own gradient
                optimizer_step(optimizer, loss, param_list, hooks,
                               Batch(xb, yb, idx, mask=valid if padded else None, functional=(base, params, buffers)))
                loss_sum += per.detach().float().sum(1)
                correct += ((out.detach().argmax(2) == yb) & valid).sum(1)
                seen += valid.sum(1)
            seconds = time.perf_counter() - t0
            seen_f = seen.clamp(min=1).float()
            losses, accs = (loss_sum / seen_f).tolist(), (correct.float() / seen_f).tolist()
            for j, loss_j in enumerate(losses):  # before any state is saved
                check_diverged(loss_j, out.shape[-1], epoch + 1, f"{desc}, model {j}", recipe)
            for j in range(g):
                histories[j].append({"epoch": epoch + 1, "loss": losses[j], "accuracy": accs[j],
                                     "seconds": seconds / g})
            bar.set_postfix(loss=f"{sum(losses) / g:.4f}", acc=f"{sum(accs) / g:.3f}")
            state = GroupState(epoch + 1, {k: v.detach() for k, v in params.items()}, optimizer.state_dict(),
                               [gen.get_state() for gen in gens], get_global_rng(device),
                               [list(h) for h in histories])
            if on_epoch is not None:
                on_epoch(state)
            if hooks.stop(state):
                break
    state_dicts = [unstack(params, j) | unstack(buffers, j) for j in range(g)]
    for j, sd in enumerate(state_dicts):  # a non-finite model is never returned, so never cached
        check_finite(sd, f"{desc}, model {j}", recipe)
    return state_dicts, histories
