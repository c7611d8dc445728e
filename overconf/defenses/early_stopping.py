"""Early stopping (e.g. Caruana et al. 2001; as a membership-inference defense: Song & Mittal 2021,
"Systematic evaluation of privacy risks"): a training-time defense.

After every epoch the model's mean cross-entropy (``monitor: loss``, lower is better) or accuracy
(``monitor: accuracy``) on a validation split is computed; training stops once ``patience`` epochs
have passed without improvement on the best, and the best epoch's weights are restored (also when
``recipe.epochs`` is reached first). The validation split is the study's held-out **calibration
split**: it exists in every study, is disjoint from every training split and from every evaluation
non-member set by construction (the splits are disjoint), and is already the defender's held-out
data; the reserve is not used because reference models and RMIA's population sample draw on it.
The epoch chosen is a result row. Only the single-model loop is supported (reference models of an
aware attacker train sequentially). A resumed training restarts the best-epoch tracking.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from ..training.hooks import Batch, TrainingHooks
from .base import DEFENSES, Defense, held_out_inputs

MONITORS = ("loss", "accuracy")


class EarlyStoppingHooks(TrainingHooks):
    batched = False

    def __init__(self, x_val: torch.Tensor, y_val: torch.Tensor, patience: int, epochs: int, monitor: str = "loss"):
        self.x_val, self.y_val, self.patience, self.epochs, self.monitor = x_val, y_val, patience, epochs, monitor
        self._model = None
        self._best = None

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        if batch.model is None:
            raise NotImplementedError("early_stopping needs the single-model training loop (Batch.model)")
        self._model = batch.model
        super().gradient(loss, params, batch)

    @torch.no_grad()
    def validation_value(self, model) -> float:
        """Mean cross-entropy (or minus the accuracy) on the validation split: lower is better."""
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        total, n = 0.0, len(self.y_val)
        for i in range(0, n, 1024):
            x, y = self.x_val[i: i + 1024].to(device), self.y_val[i: i + 1024].to(device)
            out = model(x).float()
            total += float(F.cross_entropy(out, y, reduction="sum") if self.monitor == "loss"
                           else -(out.argmax(1) == y).sum())
        model.train(was)
        return total / n

    def stop(self, state: Any) -> bool:
        if self._best is None or state.epoch == 1:
            self._best = (float("inf"), 0, None)
        value = self.validation_value(self._model)
        best, best_epoch, _ = self._best
        if value < best:
            self._best = (value, state.epoch, {k: v.detach().clone() for k, v in state.model.items()})
        done = state.epoch - self._best[1] >= self.patience or state.epoch >= self.epochs
        if done:
            for k, v in state.model.items():  # state.model shares the live model's storage
                v.copy_(self._best[2][k])
            state.history[-1]["early_stopping_epoch"] = self._best[1]
            self._best = None
        return done

    def describe(self) -> dict[str, Any]:
        return {"kind": "early_stopping", "patience": self.patience, "monitor": self.monitor,
                "validation": tensor_digest(self.x_val), "validation_labels": tensor_digest(self.y_val)}


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
        return EarlyStoppingHooks(x, labels, self.patience, job.recipe.epochs, self.monitor)

    def info(self, job, history: list[dict]) -> dict[str, float]:
        chosen = next((h["early_stopping_epoch"] for h in reversed(history) if "early_stopping_epoch" in h),
                      len(history))
        return {"early_stopping_epoch": chosen, "epochs_run": len(history)}
