"""DP-SGD (Abadi et al. 2016, "Deep learning with differential privacy"): a training-time defense.

Per step: Poisson sampling (each training point joins the batch independently with probability
q = batch_size / n; n // batch_size steps an epoch), per-sample gradients g_i (torch.func
``vmap(grad)`` over the model's functional call), clipped to norm C = ``max_grad_norm``
(g_i * min(1, C / ||g_i||), the norm over all parameters), summed, plus Gaussian noise
N(0, (sigma C)^2 I), divided by the expected batch size q n (as opacus' DPOptimizer with
``loss_reduction="mean"``). sigma = ``noise_multiplier``, or from a target ``epsilon`` at
``delta`` (default 1e-5, must be < 1/n: :mod:`.dp_accounting`) by opacus' ``get_noise_multiplier``
(accountant ``rdp`` or ``prv``). The epsilon reached over the steps taken is opacus' accountant for
(sigma, q, steps) at ``delta``, reported with ``delta``, and at delta = 1/n beside it (seed 003's
convention, for comparison only).

Frozen parameters (``requires_grad`` False, e.g. fast_cifar's whitening filters) are skipped as
opacus skips them: they enter neither the per-sample clipping norm nor the noise, and are never
updated. A data-dependent init (``init_from_data``: fast_cifar's patch whitening) fitted on the
private training images would be outside the guarantee: under DP it is fitted on the held-out
calibration split instead (data outside every training set; :meth:`DPSGDHooks.init_inputs`), and the
model's key records those inputs.

Opacus-equivalent, not opacus' ``PrivacyEngine``: the loop is ours (one trainer for every defense,
and a stacked torch.func ensemble that opacus cannot wrap), but the update is opacus' (tested
equal to ``GradSampleModule`` + ``DPOptimizer`` with noise 0), the noise calibration is opacus'
``get_noise_multiplier`` and the epsilon is opacus' accountant.

BatchNorm mixes the samples of a batch (no per-sample gradient): as the issue asks, a DP job
trains the model made DP-compatible by opacus' ``ModuleValidator.fix`` (each BatchNorm becomes a
GroupNorm); its key records the swap (only DP jobs of such architectures), the row
``dp_batchnorm_replaced`` says 1, and the study also trains the same GroupNorm model without DP
(:mod:`.groupnorm_baseline`) so that the accuracy cost row is DP's alone.

Both loops: the single-model loop (``Batch.model``) and the batched one (``Batch.functional``,
:meth:`DPSGDHooks.group_batches`): per model its own Poisson batches (the same masks its
sequential training draws), padded with masked rows to the step's largest batch (a padding row's
clipping factor is 0, so it adds nothing), per-sample gradients by ``vmap`` over the models and
the samples, per-model clipping, per-model noise from a generator seeded by that model's batch
generator, division by the expected batch size q n. The sequential loop skips empty Poisson batches
(the accountant still counts them); the batched loop takes them (a noise-only step, as opacus).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from ..training.hooks import Batch, TrainingHooks
from .base import DEFENSES, Defense, held_out_inputs
from .dp_accounting import (ACCOUNTANTS, DEFAULT_DELTA, accountant as opacus_accountant,  # noqa: F401
                            check_delta, epsilon_reached, noise_for, sample_rate, steps_per_epoch)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fix_batchnorm(model: nn.Module) -> nn.Module:
    """opacus' ``ModuleValidator.fix``: every BatchNorm replaced by a GroupNorm (deterministic init)."""
    from opacus.validators import ModuleValidator
    return ModuleValidator.fix(model)


def has_frozen(model: nn.Module) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def check_no_batchnorm(model: nn.Module) -> None:
    bn = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bn:
        raise ConfigError(f"defense dp_sgd needs per-sample gradients, but the model has BatchNorm layers "
                          f"({', '.join(bn[:3])}{' ...' if len(bn) > 3 else ''}), which mix the samples of a "
                          f"batch; use an architecture without BatchNorm (e.g. salem_cnn)")


class DPSGDHooks(TrainingHooks):
    """Poisson batches and clipped, noised per-sample gradients (see the module docstring)."""

    batched = True
    """both loops: reference models of a DP setting train batched when reference.mode is batched"""

    def __init__(self, noise_multiplier: float, max_grad_norm: float, replace_batchnorm: bool = False,
                 init_x: torch.Tensor | None = None, frozen: bool = False):
        self.noise_multiplier, self.max_grad_norm = float(noise_multiplier), float(max_grad_norm)
        self.replace_batchnorm = bool(replace_batchnorm)
        self.init_x = init_x
        """held-out inputs a data-dependent init is fitted on (None: the model has none)"""
        self.frozen = bool(frozen)
        """the model has frozen parameters (keyed: they were clipped, noised and trained before)"""
        self.expected_batch_size: float | None = None
        self._noise: torch.Generator | None = None
        self._noises: list[torch.Generator] = []
        self._loss_fn = None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """BatchNorm -> GroupNorm (opacus' ``ModuleValidator.fix``) when the job's architecture has it."""
        return fix_batchnorm(model) if self.replace_batchnorm and has_batchnorm(model) else model

    def init_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The held-out inputs a data-dependent init is fitted on, never the private training ``x``."""
        if self.init_x is None:
            raise ConfigError("defense dp_sgd: the model fits a layer on its training data before training "
                              "(init_from_data), which DP-SGD does not cover; build the hooks with the job "
                              "(DPSGD.hooks_for) so that it is fitted on the held-out calibration split")
        return self.init_x

    @staticmethod
    def _seeded(generator: torch.Generator, device) -> torch.Generator:
        noise = torch.Generator(device=device)
        noise.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device)))
        return noise

    def group_batches(self, n, batch_size, generators, device):
        """Batched loop: per model the Poisson masks its sequential training draws (empty batches
        kept), padded with -1 to each step's largest batch (at least one row)."""
        q = sample_rate(n, batch_size)
        self.expected_batch_size = q * n
        self._noises = [self._seeded(g, device) for g in generators]
        steps = []
        for _ in range(steps_per_epoch(n, batch_size)):
            picked = [(torch.rand(n, generator=g, device=device) < q).nonzero().squeeze(1) for g in generators]
            width = max(1, max(len(p) for p in picked))
            out = torch.full((len(generators), width), -1, dtype=torch.long, device=device)
            for j, p in enumerate(picked):
                out[j, : len(p)] = p
            steps.append(out)
        return steps

    def batches(self, n, batch_size, generator, device):
        """Poisson sampling: n // batch_size batches, each point in each with probability
        batch_size / n (empty batches are skipped: the accountant still counts them, conservative).
        The epoch's noise generator is seeded from the model's own batch generator, so the noise is
        reproducible per model, survives a resume and one hooks object can serve many models."""
        q = sample_rate(n, batch_size)
        self.expected_batch_size = q * n
        self._noise = self._seeded(generator, device)
        out = []
        for _ in range(steps_per_epoch(n, batch_size)):
            idx = (torch.rand(n, generator=generator, device=device) < q).nonzero().squeeze(1)
            if len(idx):
                out.append(idx)
        return out

    def per_sample_gradients(self, model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> dict:
        """{name: [B, *shape]}: the gradient of each sample's loss ``loss_fn(logits_i, y_i)`` with
        respect to each trainable parameter (frozen ones are constants, as in opacus)."""
        from torch.func import functional_call, grad, vmap
        params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
        buffers = {k: v.detach() for k, v in model.named_buffers()}

        def one(p, xi, yi):
            out = functional_call(model, (p, frozen, buffers), (xi.unsqueeze(0),))
            return loss_fn(out, yi.unsqueeze(0))

        return vmap(grad(one), in_dims=(None, 0, 0), randomness="different")(params, x, y)

    def clipped_sum(self, grads: dict) -> dict:
        """sum_i g_i * min(1, C / ||g_i||) (norm over all parameters of sample i)."""
        flat = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
        factor = (self.max_grad_norm / (flat + 1e-6)).clamp(max=1.0)
        return {k: torch.einsum("i,i...->...", factor, g) for k, g in grads.items()}

    def group_gradient(self, params: list[torch.Tensor], batch: Batch) -> None:
        """Batched loop: per-model, per-sample clipped gradients of G stacked models (trainable
        parameters only), summed over the real rows (``batch.mask``), plus per-model noise, over the
        expected batch size."""
        from torch.func import functional_call, grad, vmap
        module, stacked, buffers = batch.functional
        loss_fn = self._loss_fn
        trainable = {k: v.detach() for k, v in stacked.items() if v.requires_grad}
        frozen = {k: v.detach() for k, v in stacked.items() if not v.requires_grad}

        def one(p, f, b, xi, yi):
            return loss_fn(functional_call(module, (p, f, b), (xi.unsqueeze(0),)), yi.unsqueeze(0))

        per_sample = vmap(grad(one), in_dims=(None, None, None, 0, 0), randomness="different")
        grads = vmap(per_sample, in_dims=(0, 0, 0, 0, 0), randomness="different")(
            trainable, frozen, buffers, batch.x, batch.y)  # {name: [G, B, ...]}
        g, b = batch.y.shape
        norms = torch.stack([v.reshape(g, b, -1).norm(dim=2) for v in grads.values()], 2).norm(dim=2)  # [G, B]
        factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        if batch.mask is not None:
            factor = factor * batch.mask
        summed = {k: torch.einsum("gb,gb...->g...", factor, v) for k, v in grads.items()}
        if self.noise_multiplier > 0:  # model j draws its noise in the sequential loop's order
            noise = {k: [] for k in summed}
            for j, gen in enumerate(self._noises):
                for k, v in summed.items():
                    noise[k].append(torch.randn(v.shape[1:], generator=gen, device=v.device, dtype=v.dtype))
            summed = {k: v + self.noise_multiplier * self.max_grad_norm * torch.stack(noise[k]) for k, v in summed.items()}
        by_id = {id(v): k for k, v in stacked.items()}
        for p in params:
            if p.requires_grad:  # frozen: no gradient, so the optimizer leaves it alone
                p.grad = (summed[by_id[id(p)]] / self.expected_batch_size).to(p.dtype)

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        if batch.model is None and batch.functional is not None:
            return self.group_gradient(params, batch)
        if batch.model is None:
            raise NotImplementedError("dp_sgd needs Batch.model (single loop) or Batch.functional (batched loop)")
        model = batch.model
        check_no_batchnorm(model)
        if self._noise is None:  # gradient() called outside a training loop
            self._noise = torch.Generator(device=batch.x.device)
            self._noise.manual_seed(0)
        loss_fn = self._loss_fn
        summed = self.clipped_sum(self.per_sample_gradients(model, loss_fn, batch.x, batch.y))
        denom = self.expected_batch_size or len(batch.x)
        named = dict(model.named_parameters())
        by_id = {id(p): k for k, p in named.items()}
        for p in params:
            if not p.requires_grad:  # frozen: no gradient, so the optimizer leaves it alone
                continue
            g = summed[by_id[id(p)]]
            if self.noise_multiplier > 0:
                g = g + self.noise_multiplier * self.max_grad_norm * torch.randn(
                    g.shape, generator=self._noise, device=g.device, dtype=g.dtype)
            p.grad = (g / denom).to(p.dtype)

    def loss(self, recipe):
        self._loss_fn = super().loss(recipe)
        return self._loss_fn

    def describe(self) -> dict[str, Any]:
        out = {"kind": "dp_sgd", "noise_multiplier": self.noise_multiplier, "max_grad_norm": self.max_grad_norm,
               "sampling": "poisson"}
        if self.replace_batchnorm:  # only for architectures with BatchNorm: other DP keys stay as they were
            out["batchnorm"] = "groupnorm"
        if self.frozen:  # only for models with frozen parameters (fast_cifar)
            out["frozen"] = "skipped"
        if self.init_x is not None:  # only for a data-dependent init: fitted on held-out inputs
            out["init_data"] = tensor_digest(self.init_x)
        return out


@DEFENSES.register("dp_sgd")
class DPSGD(Defense):
    """(training) DP-SGD: ``epsilon`` (a target at ``delta``, default 1e-5 < 1/n) or
    ``noise_multiplier``; ``max_grad_norm`` C; ``accountant`` rdp | prv."""

    name = "dp_sgd"
    kind = "training"

    def __init__(self, epsilon: float | None = None, noise_multiplier: float | None = None,
                 max_grad_norm: float = 1.0, delta: float = DEFAULT_DELTA, accountant: str = "rdp"):
        if (epsilon is None) == (noise_multiplier is None):
            raise ConfigError("defense dp_sgd needs exactly one of 'epsilon' (a target, e.g. 8) or "
                              "'noise_multiplier' (e.g. 1.0)")
        if epsilon is not None and epsilon <= 0:
            raise ConfigError(f"defense dp_sgd: epsilon = {epsilon} must be > 0")
        if noise_multiplier is not None and noise_multiplier < 0:
            raise ConfigError(f"defense dp_sgd: noise_multiplier = {noise_multiplier} must be >= 0")
        if max_grad_norm <= 0:
            raise ConfigError(f"defense dp_sgd: max_grad_norm = {max_grad_norm} must be > 0")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise ConfigError(f"defense dp_sgd: delta = {delta!r} must be a number in (0, 1/n), e.g. the "
                              f"default {DEFAULT_DELTA:g}")
        opacus_accountant(accountant)  # the name is checked now
        self.epsilon, self.noise_multiplier, self.max_grad_norm = epsilon, noise_multiplier, float(max_grad_norm)
        self.delta, self.accountant = float(delta), accountant

    def check_data(self, splits, where: str = "defense dp_sgd") -> None:
        """Before any training (``runner.validation``): delta < 1/n for the target's and the shadow's
        training sets (``data.splits``)."""
        check_delta(self.delta, max(splits.target_train, splits.shadow_train), where)

    def resolved(self, n: int, batch_size: int, epochs: int) -> tuple[float, float]:
        """(sigma, delta) for a training set of n points (delta checked against 1/n)."""
        check_delta(self.delta, n)
        if self.noise_multiplier is not None:
            return float(self.noise_multiplier), self.delta
        sigma = noise_for(self.epsilon, self.delta, sample_rate(n, batch_size),
                          epochs * steps_per_epoch(n, batch_size), self.accountant)
        return sigma, self.delta

    def hooks(self, n: int, batch_size: int, epochs: int, replace_batchnorm: bool = False,
              init_x: torch.Tensor | None = None, frozen: bool = False) -> DPSGDHooks:
        sigma, _ = self.resolved(n, batch_size, epochs)
        return DPSGDHooks(sigma, self.max_grad_norm, replace_batchnorm, init_x, frozen)

    def hooks_for(self, job, validation=None) -> DPSGDHooks:
        """The hooks of a :class:`~overconf.training.jobs.ClassifierJob` (its n, batch size, epochs);
        an architecture with BatchNorm trains as its GroupNorm version (opacus' ``ModuleValidator.fix``);
        one with a data-dependent init fits it on the held-out calibration split ``validation``."""
        model = job.build()
        init_x = None
        if hasattr(model, "init_from_data"):
            init_x, _ = held_out_inputs(job, validation, f"defense dp_sgd: {job.arch} fits a layer on data before "
                                        "training (init_from_data); under DP it is fitted on the held-out "
                                        "calibration split, never on the private training data")
        return self.hooks(len(job.labels), job.recipe.batch_size, job.recipe.epochs, has_batchnorm(model), init_x,
                          has_frozen(fix_batchnorm(model) if has_batchnorm(model) else model))

    def info(self, job, history: list[dict]) -> dict[str, float]:
        """Result rows of a model trained by ``job`` over ``len(history)`` epochs, and whether its
        BatchNorm layers were replaced by GroupNorm (``dp_batchnorm_replaced``, 1 / 0)."""
        replaced = float(getattr(job.hooks, "replace_batchnorm", False))
        return self.describe(len(job.labels), job.recipe.batch_size, len(history), job.recipe.epochs) | {
            "dp_batchnorm_replaced": replaced}

    def describe(self, n: int, batch_size: int, epochs_run: int, epochs: int | None = None) -> dict[str, float]:
        """Rows: the noise multiplier, the epsilon reached over the epochs run at ``delta`` (with
        ``delta``), the same epsilon at delta = 1/n (``epsilon_delta_1_over_n``, seed 003's
        convention), the sampling rate and the steps accounted."""
        sigma, delta = self.resolved(n, batch_size, epochs if epochs is not None else epochs_run)
        q, steps = sample_rate(n, batch_size), epochs_run * steps_per_epoch(n, batch_size)
        return {"epsilon": epsilon_reached(sigma, q, steps, delta, self.accountant), "delta": delta,
                "epsilon_delta_1_over_n": epsilon_reached(sigma, q, steps, 1.0 / n, self.accountant),
                "noise_multiplier": sigma, "dp_sample_rate": q, "dp_steps": float(steps)}
