"""Early stopping (e.g. Caruana et al. 2001; as a membership-inference defense: Song & Mittal 2021,
"Systematic evaluation of privacy risks"): a training-time defense.

After every epoch the mean cross-entropy (``monitor: loss``, lower is better) or accuracy
(``monitor: accuracy``) on a validation split of the weights the training would release now is
computed: the model's, or with a weight EMA (``recipe.ema`` > 0, the fast_cifar preset) the EMA's,
since that is what is released. Training stops once ``patience`` epochs have passed without
improvement on the best, and the best epoch's validated weights are released exactly (also when
``recipe.epochs`` is reached first; :meth:`~overconf.training.hooks.TrainingHooks.released`), so
``early_stopping_epoch`` names the released weights. The validation split is the study's held-out
**calibration split**: it exists in every study, is disjoint from every training split and from
every evaluation non-member set by construction (the splits are disjoint), and is already the
defender's held-out data; the reserve is not used because reference models and RMIA's population
sample draw on it. The epoch chosen is a result row. Only the single-model loop is supported
(reference models of an aware attacker train sequentially). A resumed training resumes the
tracking exactly: the best value, epoch and weights are part of the resumable state.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from ..training.hooks import TrainingHooks
from .base import DEFENSES, Defense, held_out_inputs

MONITORS = ("loss", "accuracy")


class EarlyStoppingHooks(TrainingHooks):
    batched = False
    stateful = True

    def __init__(self, x_val: torch.Tensor, y_val: torch.Tensor, patience: int, epochs: int, monitor: str = "loss",
                 ema: bool = False):
        self.x_val, self.y_val, self.patience, self.epochs, self.monitor = x_val, y_val, patience, epochs, monitor
        self.ema = bool(ema)
        """the recipe has a weight EMA (the validated weights are the EMA's): keyed, since such models
        were released wrongly before (the EMA overwrote the chosen epoch)"""
        self._model = None
        self._best: tuple[float, int, dict | None] = (float("inf"), 0, None)

    def begin(self, model, x, y, seed, saved=None) -> None:
        """A fresh tracking, or the resumed one (best value, epoch, weights)."""
        self._model = model
        self._best = (float("inf"), 0, None) if saved is None else (
            float(saved["value"]), int(saved["epoch"]), saved["weights"])

    def saved(self) -> dict:
        value, epoch, weights = self._best
        return {"value": value, "epoch": epoch, "weights": weights}

    @torch.no_grad()
    def validation_value(self, model, weights: dict | None = None) -> float:
        """Mean cross-entropy (or minus the accuracy) on the validation split of ``model`` with the
        state dict ``weights`` (default: its own): lower is better."""
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        state = None if weights is None else {k: v.to(device) for k, v in weights.items()}
        total, n = 0.0, len(self.y_val)
        for i in range(0, n, 1024):
            x, y = self.x_val[i: i + 1024].to(device), self.y_val[i: i + 1024].to(device)
            out = (model(x) if state is None else functional_call(model, state, (x,))).float()
            total += float(F.cross_entropy(out, y, reduction="sum") if self.monitor == "loss"
                           else -(out.argmax(1) == y).sum())
        model.train(was)
        return total / n

    def stop(self, state: Any) -> bool:
        """Validates the weights the training would release now (``state.released_weights()``: the
        EMA's or the model's), keeps a CPU copy of the best, stops after ``patience`` epochs without
        improvement or at the last epoch."""
        weights = state.released_weights()
        value = self.validation_value(self._model, weights)
        if value < self._best[0]:
            self._best = (value, state.epoch, {k: v.detach().cpu().clone() for k, v in weights.items()})
        done = state.epoch - self._best[1] >= self.patience or state.epoch >= self.epochs
        if done:
            state.history[-1]["early_stopping_epoch"] = self._best[1]
        return done

    def released(self, weights: dict) -> dict:
        """The validated weights of the best epoch (exactly those; ``weights`` if none was better)."""
        best = self._best[2]
        return weights if best is None else best

    def describe(self) -> dict[str, Any]:
        out = {"kind": "early_stopping", "patience": self.patience, "monitor": self.monitor,
               "validation": tensor_digest(self.x_val), "validation_labels": tensor_digest(self.y_val)}
        if self.ema:  # only recipes with a weight EMA: other early-stopping keys stay as they were
            out["validates"] = "ema"
        return out


@DEFENSES.register("early_stopping")
class EarlyStopping(Defense):
    """(training) Early stopping on the held-out calibration split: ``patience`` epochs, ``monitor`` loss | accuracy."""

    name = "early_stopping"
    kind = "training"
    uses_calibration_split = True

    def __init__(self, patience: int = 3, monitor: str = "loss"):
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"defense early_stopping: patience = {patience!r} must be an integer >= 1")
        if monitor not in MONITORS:
            raise ConfigError(f"defense early_stopping: monitor = '{monitor}' is not allowed; use one of "
                              f"{', '.join(MONITORS)}")
        self.patience, self.monitor = patience, monitor

    def hooks_for(self, job, validation=None) -> EarlyStoppingHooks:
        x, labels = held_out_inputs(job, validation, "defense early_stopping validates on the held-out "
                                    "calibration split")
        return EarlyStoppingHooks(x, labels, self.patience, job.recipe.epochs, self.monitor,
                                  ema=getattr(job.recipe, "ema", 0) > 0)

    def info(self, job, history: list[dict]) -> dict[str, float]:
        chosen = next((h["early_stopping_epoch"] for h in reversed(history) if "early_stopping_epoch" in h),
                      len(history))
        return {"early_stopping_epoch": chosen, "epochs_run": len(history)}
