"""DP-SGD (Abadi et al. 2016, "Deep learning with differential privacy"): a training-time defense.

Per step: Poisson sampling (each training point joins the batch independently with probability
q = batch_size / n; n // batch_size steps an epoch), per-sample gradients g_i (torch.func
``vmap(grad)`` over the model's functional call), clipped to norm C = ``max_grad_norm``
(g_i * min(1, C / ||g_i||), the norm over all parameters), summed, plus Gaussian noise
N(0, (sigma C)^2 I), divided by the expected batch size q n (as opacus' DPOptimizer with
``loss_reduction="mean"``). sigma = ``noise_multiplier``, or from a target ``epsilon`` at
``delta`` (default 1/n) by opacus' ``get_noise_multiplier`` (accountant ``rdp`` or ``prv``). The
epsilon reached over the steps taken is opacus' accountant for (sigma, q, steps) at ``delta``.

BatchNorm mixes samples of a batch (no per-sample gradient): such models are refused. Only the
single-model loop (``Batch.model``) is supported.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..training.hooks import Batch, TrainingHooks
from .base import DEFENSES, Defense

ACCOUNTANTS = ("rdp", "prv")


def _accountant(name: str):
    from opacus.accountants import PRVAccountant, RDPAccountant
    if name not in ACCOUNTANTS:
        raise ConfigError(f"dp_sgd accountant '{name}' is not allowed; use one of {', '.join(ACCOUNTANTS)}")
    return RDPAccountant() if name == "rdp" else PRVAccountant()


def sample_rate(n: int, batch_size: int) -> float:
    """q = batch_size / n (capped at 1)."""
    return min(1.0, batch_size / n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


def epsilon_reached(noise_multiplier: float, q: float, steps: int, delta: float, accountant: str = "rdp") -> float:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps (opacus' RDP / PRV accountant);
    inf without noise."""
    if noise_multiplier <= 0:
        return float("inf")
    acc = _accountant(accountant)
    acc.history = [(float(noise_multiplier), float(q), int(steps))]
    return float(acc.get_epsilon(delta=delta))


def check_no_batchnorm(model: nn.Module) -> None:
    bn = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bn:
        raise ConfigError(f"defense dp_sgd needs per-sample gradients, but the model has BatchNorm layers "
                          f"({', '.join(bn[:3])}{' ...' if len(bn) > 3 else ''}), which mix the samples of a "
                          f"batch; use an architecture without BatchNorm (e.g. salem_cnn)")


class DPSGDHooks(TrainingHooks):
    """Poisson batches and clipped, noised per-sample gradients (see the module docstring)."""

    batched = False
    """the batched loop has no per-model functional call: reference models train sequentially"""

    def __init__(self, noise_multiplier: float, max_grad_norm: float):
        self.noise_multiplier, self.max_grad_norm = float(noise_multiplier), float(max_grad_norm)
        self.expected_batch_size: float | None = None
        self._noise: torch.Generator | None = None
        self._loss_fn = None

    def batches(self, n, batch_size, generator, device):
        """Poisson sampling: n // batch_size batches, each point in each with probability
        batch_size / n (empty batches are skipped: the accountant still counts them, conservative).
        The epoch's noise generator is seeded from the model's own batch generator, so the noise is
        reproducible per model, survives a resume and one hooks object can serve many models."""
        q = sample_rate(n, batch_size)
        self.expected_batch_size = q * n
        self._noise = torch.Generator(device=device)
        self._noise.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device)))
        out = []
        for _ in range(steps_per_epoch(n, batch_size)):
            idx = (torch.rand(n, generator=generator, device=device) < q).nonzero().squeeze(1)
            if len(idx):
                out.append(idx)
        return out

    def per_sample_gradients(self, model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> dict:
        """{name: [B, *shape]}: the gradient of each sample's loss ``loss_fn(logits_i, y_i)``."""
        from torch.func import functional_call, grad, vmap
        params = {k: v.detach() for k, v in model.named_parameters()}
        buffers = {k: v.detach() for k, v in model.named_buffers()}

        def one(p, xi, yi):
            out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
            return loss_fn(out, yi.unsqueeze(0))

        return vmap(grad(one), in_dims=(None, 0, 0), randomness="different")(params, x, y)

    def clipped_sum(self, grads: dict) -> dict:
        """sum_i g_i * min(1, C / ||g_i||) (norm over all parameters of sample i)."""
        flat = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
        factor = (self.max_grad_norm / (flat + 1e-6)).clamp(max=1.0)
        return {k: torch.einsum("i,i...->...", factor, g) for k, g in grads.items()}

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        if batch.model is None:
            raise NotImplementedError("dp_sgd needs the single-model training loop (Batch.model)")
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
            g = summed[by_id[id(p)]]
            if self.noise_multiplier > 0:
                g = g + self.noise_multiplier * self.max_grad_norm * torch.randn(
                    g.shape, generator=self._noise, device=g.device, dtype=g.dtype)
            p.grad = (g / denom).to(p.dtype)

    def loss(self, recipe):
        self._loss_fn = super().loss(recipe)
        return self._loss_fn

    def describe(self) -> dict[str, Any]:
        return {"kind": "dp_sgd", "noise_multiplier": self.noise_multiplier, "max_grad_norm": self.max_grad_norm,
                "sampling": "poisson"}


@DEFENSES.register("dp_sgd")
class DPSGD(Defense):
    """(training) DP-SGD: ``epsilon`` (target, with ``delta``; default 1/n) or ``noise_multiplier``;
    ``max_grad_norm`` C; ``accountant`` rdp | prv."""

    name = "dp_sgd"
    kind = "training"

    def __init__(self, epsilon: float | None = None, noise_multiplier: float | None = None,
                 max_grad_norm: float = 1.0, delta: float | None = None, accountant: str = "rdp"):
        if (epsilon is None) == (noise_multiplier is None):
            raise ConfigError("defense dp_sgd needs exactly one of 'epsilon' (a target, e.g. 8) or "
                              "'noise_multiplier' (e.g. 1.0)")
        if epsilon is not None and epsilon <= 0:
            raise ConfigError(f"defense dp_sgd: epsilon = {epsilon} must be > 0")
        if noise_multiplier is not None and noise_multiplier < 0:
            raise ConfigError(f"defense dp_sgd: noise_multiplier = {noise_multiplier} must be >= 0")
        if max_grad_norm <= 0:
            raise ConfigError(f"defense dp_sgd: max_grad_norm = {max_grad_norm} must be > 0")
        _accountant(accountant)
        self.epsilon, self.noise_multiplier, self.max_grad_norm = epsilon, noise_multiplier, float(max_grad_norm)
        self.delta, self.accountant = delta, accountant

    def resolved(self, n: int, batch_size: int, epochs: int) -> tuple[float, float]:
        """(sigma, delta) for a training set of n points."""
        delta = self.delta if self.delta is not None else 1.0 / n
        if self.noise_multiplier is not None:
            return float(self.noise_multiplier), delta
        from opacus.accountants.utils import get_noise_multiplier
        sigma = get_noise_multiplier(target_epsilon=self.epsilon, target_delta=delta,
                                     sample_rate=sample_rate(n, batch_size),
                                     steps=epochs * steps_per_epoch(n, batch_size), accountant=self.accountant)
        return float(sigma), delta

    def hooks(self, n: int, batch_size: int, epochs: int) -> DPSGDHooks:
        sigma, _ = self.resolved(n, batch_size, epochs)
        return DPSGDHooks(sigma, self.max_grad_norm)

    def hooks_for(self, job, validation=None) -> DPSGDHooks:
        """The hooks of a :class:`~overconf.training.jobs.ClassifierJob` (its n, batch size, epochs)."""
        return self.hooks(len(job.labels), job.recipe.batch_size, job.recipe.epochs)

    def info(self, job, history: list[dict]) -> dict[str, float]:
        """Result rows of a model trained by ``job`` over ``len(history)`` epochs."""
        return self.describe(len(job.labels), job.recipe.batch_size, len(history), job.recipe.epochs)

    def describe(self, n: int, batch_size: int, epochs_run: int, epochs: int | None = None) -> dict[str, float]:
        """Rows: the noise multiplier and the epsilon reached over the epochs run."""
        sigma, delta = self.resolved(n, batch_size, epochs if epochs is not None else epochs_run)
        steps = epochs_run * steps_per_epoch(n, batch_size)
        return {"epsilon": epsilon_reached(sigma, sample_rate(n, batch_size), steps, delta, self.accountant),
                "noise_multiplier": sigma, "delta": delta}
