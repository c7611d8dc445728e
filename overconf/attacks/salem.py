"""ML-Leaks / Salem et al. (NDSS 2019) attack model: an MLP on the top-k sorted probabilities."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import fitted_on_shadow
from .mlp import train_binary_mlp


def top_k_features(s: Signals, k: int, with_label: bool = False, log: bool = False) -> torch.Tensor:
    """Top-k probabilities in decreasing order (log-probabilities if ``log``), optionally followed
    by a one-hot of the label (the predicted class where the label is unknown)."""
    src = s.log_probs if log else s.probs
    feats = src.topk(k, dim=1).values.float()
    if with_label:
        feats = torch.cat([feats, F.one_hot(s.labels_or_predicted, s.log_probs.shape[1]).float()], 1)
    return feats


@ATTACKS.register("salem")
class Salem(Attack):
    """MLP (in -> hidden -> 1) on the top-k sorted probabilities, trained with binary cross-entropy
    on the shadow model's members (1) and non-members (0); member iff its output >= 0.5."""

    name = "salem"

    def __init__(self, k: int = 3, with_label: bool = False, hidden: int = 64, epochs: int = 50,
                 lr: float = 1e-3, batch_size: int = 128, log: bool = False, label: str | None = None):
        if k < 1:
            raise ConfigError(f"attack salem: k must be >= 1, got {k}")
        self.k, self.with_label, self.hidden, self.log = k, with_label, hidden, log
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self._label = label

    @property
    def label(self) -> str:
        return self._label or f"salem_top{self.k}" + ("_label" if self.with_label else "")

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        k = min(self.k, members.log_probs.shape[1])
        x = torch.cat([top_k_features(members, k, self.with_label, self.log),
                       top_k_features(nonmembers, k, self.with_label, self.log)])
        y = torch.cat([torch.ones(len(members)), torch.zeros(len(nonmembers))])
        mlp = train_binary_mlp(x, y, hidden=self.hidden, epochs=self.epochs, lr=self.lr,
                               batch_size=self.batch_size, generator=generator)

        def score(s: Signals) -> torch.Tensor:
            with torch.no_grad():  # the MLP's logit: >= 0 iff sigmoid >= 0.5
                return mlp(top_k_features(s, k, self.with_label, self.log)).squeeze(1).double()

        return fitted_on_shadow(score, 0.0, members, nonmembers, k=k, with_label=self.with_label,
                                decision="sigmoid >= 0.5")
