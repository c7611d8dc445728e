"""Adversarial regularisation (Nasr, Shokri, Houmansadr, CCS 2018, "Machine learning with membership
privacy using adversarial regularization"): a training-time defense, min-max training.

The inference model h(f(x), y) (the paper's attack: one MLP stream over the probability vector
f(x), 1024-512-64, one over the one-hot label, 512-64, joined by 256-64-1; PyTorch's default initialisation
from a seeded generator) learns to tell members D (the classifier's training batch)
from the defender's reference set D' (the held-out **calibration split**, never an evaluation
non-member set). Per classifier step (Algorithm 1):

1. ``k`` steps of h (Adam, ``inference_lr``) maximising the gain
   G = mean_D log h(f(x), y) + mean_D' log(1 - h(f(x'), y')), on the step's member batch and a
   reference batch of the same size drawn (seeded) from D'; f is queried in eval mode, no gradient;
2. one step of f on CE + ``lam`` * mean_D log h(f(x), y) (the paper's log h term: the classifier
   lowers h's confidence on its members), h fixed.

The first ``warmup_epochs`` epochs train f plainly (the authors' code trains one epoch before the
game). Defaults: lam 3 and inference lr 1e-4 (the authors' Purchase / Texas code), k 1
(Algorithm 1 alternates k steps of h with one of f). Only the single-model loop (``Batch.model``)
is supported: reference models of an aware attacker train sequentially (``batched = False``).
Randomness: h's initialisation and the reference batches come from a generator seeded each
epoch from the model's own batch generator (so from the job's seed). A resumed training
restarts h. Rows (``info``): h's accuracy on members and on reference points and its gain G,
averaged over the last epoch's steps of h.
"""
from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from ..training.hooks import Batch, TrainingHooks
from .base import DEFENSES, Defense, held_out_inputs

STATS = ("member_accuracy", "reference_accuracy", "gain")


class InferenceModel(nn.Module):
    """h(p, y): the membership logit (pre-sigmoid) of probability vectors ``p`` [B, K] with labels
    one-hot ``y`` [B, K] (Nasr et al. 2018, Fig. 2 / Table 7)."""

    def __init__(self, num_classes: int, seed: int):
        super().__init__()
        k = num_classes
        self.prediction = nn.Sequential(nn.Linear(k, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                                        nn.Linear(512, 64), nn.ReLU())
        self.label = nn.Sequential(nn.Linear(k, 512), nn.ReLU(), nn.Linear(512, 64), nn.ReLU())
        self.combine = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                                     nn.Linear(64, 1))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # PyTorch's default Linear initialisation, from a seeded generator
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1 / layer.in_features ** 0.5
                    layer.weight.uniform_(-bound, bound, generator=g)
                    layer.bias.uniform_(-bound, bound, generator=g)

    def forward(self, probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.combine(torch.cat([self.prediction(probs), self.label(onehot)], 1)).squeeze(1)


class _ModelState:
    """The game's state for one classifier being trained (one hooks object may serve many models)."""

    def __init__(self, model: nn.Module, num_classes: int, seed: int, lr: float, device):
        self.model = weakref.ref(model)
        self.h = InferenceModel(num_classes, seed).to(device)
        self.optimizer = torch.optim.Adam(self.h.parameters(), lr=lr)
        self.epochs_done = 0
        self.sums = torch.zeros(len(STATS), dtype=torch.float64)
        self.count = 0


class AdversarialRegularisationHooks(TrainingHooks):
    """Min-max training against an inference model (see the module docstring)."""

    batched = False
    """the game needs the model object (Batch.model): reference models train sequentially"""

    def __init__(self, x_ref: torch.Tensor, y_ref: torch.Tensor, num_classes: int, lam: float = 3.0, k: int = 1,
                 inference_lr: float = 1e-4, warmup_epochs: int = 1):
        self.x_ref, self.y_ref, self.num_classes = x_ref, y_ref, num_classes
        self.lam, self.k, self.inference_lr, self.warmup_epochs = float(lam), int(k), float(inference_lr), int(warmup_epochs)
        self._state: _ModelState | None = None
        self._epoch_seed = 0
        self._refs: torch.Generator | None = None
        self._logits: torch.Tensor | None = None

    def batches(self, n, batch_size, generator, device):
        """Plain shuffled batches; then this epoch's seed for h (first epoch) and the reference batches."""
        out = super().batches(n, batch_size, generator, device)
        self._epoch_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device))
        self._refs = torch.Generator(device="cpu")
        self._refs.manual_seed(self._epoch_seed)
        return out

    def loss(self, recipe):
        """The recipe's loss, keeping the step's logits (with their graph) for the log h term."""
        base = super().loss(recipe)

        def loss_fn(logits, labels, reduction="mean"):
            self._logits = logits
            return base(logits, labels, reduction=reduction)

        return loss_fn

    def state_for(self, model: nn.Module, device) -> _ModelState:
        st = self._state
        if st is None or st.model() is not model:  # a new model: a fresh inference model
            st = self._state = _ModelState(model, self.num_classes, self._epoch_seed, self.inference_lr, device)
        return st

    def inference_inputs(self, probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return probs, F.one_hot(y, self.num_classes).to(probs.dtype)

    def train_inference(self, st: _ModelState, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """k steps of h on the member batch (x, y) against reference batches of the same size."""
        was = model.training
        model.eval()
        with torch.no_grad():
            pm = F.softmax(model(x).float(), 1)
            refs = [torch.randint(0, len(self.y_ref), (len(y),), generator=self._refs) for _ in range(self.k)]
            prs = [F.softmax(model(self.x_ref[i].to(x.device)).float(), 1) for i in refs]
        model.train(was)
        for i, pr in zip(refs, prs):
            hm = st.h(*self.inference_inputs(pm, y))
            hr = st.h(*self.inference_inputs(pr, self.y_ref[i].to(y.device)))
            gain = F.logsigmoid(hm).mean() + F.logsigmoid(-hr).mean()  # log h on D, log(1 - h) on D'
            st.optimizer.zero_grad(set_to_none=True)
            (-gain).backward()
            st.optimizer.step()
            st.sums += torch.tensor([float((hm > 0).float().mean()), float((hr < 0).float().mean()), float(gain.detach())],
                                    dtype=torch.float64)
            st.count += 1

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        if batch.model is None:
            raise NotImplementedError("adversarial_regularisation needs the single-model training loop (Batch.model)")
        st = self.state_for(batch.model, batch.x.device)
        if st.epochs_done < self.warmup_epochs:
            loss.backward()
            return
        self.train_inference(st, batch.model, batch.x, batch.y)
        st.h.requires_grad_(False)
        try:
            term = F.logsigmoid(st.h(*self.inference_inputs(F.softmax(self._logits.float(), 1), batch.y))).mean()
            (loss + self.lam * term).backward()
        finally:
            st.h.requires_grad_(True)

    def stop(self, state: Any) -> bool:
        """Never stops; records h's statistics of the epoch in its history row."""
        st = self._state
        if st is not None:
            st.epochs_done = state.epoch
            if st.count:
                for name, v in zip(STATS, (st.sums / st.count).tolist()):
                    state.history[-1][f"adv_reg_{name}"] = v
            st.sums.zero_()
            st.count = 0
        return False

    def describe(self) -> dict[str, Any]:
        return {"kind": "adversarial_regularisation", "lambda": self.lam, "k": self.k,
                "inference_lr": self.inference_lr, "warmup_epochs": self.warmup_epochs,
                "reference": tensor_digest(self.x_ref), "reference_labels": tensor_digest(self.y_ref)}


@DEFENSES.register("adversarial_regularisation")
class AdversarialRegularisation(Defense):
    """(training) Nasr et al. 2018 min-max training against an inference model on the held-out
    calibration split: ``lam`` (lambda, 3), ``k`` (steps of h per step of f, 1), ``inference_lr``
    (1e-4), ``warmup_epochs`` (plain epochs first, 1)."""

    name = "adversarial_regularisation"
    kind = "training"
    uses_calibration_split = True

    def __init__(self, lam: float = 3.0, k: int = 1, inference_lr: float = 1e-4, warmup_epochs: int = 1):
        for key, v in (("lam", lam), ("inference_lr", inference_lr)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "inference_lr" and v == 0):
                raise ConfigError(f"defense adversarial_regularisation: {key} = {v!r} must be a number "
                                  f"{'> 0' if key == 'inference_lr' else '>= 0'} (e.g. lam: 3, inference_lr: 1e-4)")
        for key, v, low in (("k", k, 1), ("warmup_epochs", warmup_epochs, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"defense adversarial_regularisation: {key} = {v!r} must be an integer >= {low}")
        self.lam, self.k, self.inference_lr, self.warmup_epochs = float(lam), k, float(inference_lr), warmup_epochs

    def hooks_for(self, job, validation=None) -> AdversarialRegularisationHooks:
        x, labels = held_out_inputs(job, validation, "defense adversarial_regularisation trains its inference "
                                    "model against the held-out calibration split")
        return AdversarialRegularisationHooks(x, labels, job.num_classes, self.lam, self.k, self.inference_lr,
                                              self.warmup_epochs)

    def info(self, job, history: list[dict]) -> dict[str, float]:
        """h's accuracy on members / reference points and its gain, over the last epoch of the game."""
        last = next((h for h in reversed(history) if "adv_reg_gain" in h), {})
        return {f"adv_reg_{s}": float(last.get(f"adv_reg_{s}", float("nan"))) for s in STATS}
