"""Shokri et al., "Membership Inference Attacks Against Machine Learning Models" (IEEE S&P 2017).

Several shadow models are trained like the target; their prediction vectors on points they did
(in) and did not (out) train on become labelled training data for one binary attack model per
class. Here the shadows are the K reference models on the shadow's fit points, each point IN for
half of them (``reference_keep``), plus the study's shadow model on its members and non-members
(``include_shadow``). Each class's attack model is an MLP (C -> hidden -> 1) on the probability
vector; a query goes to the model of its label (the predicted class where unlabelled), and
"member" means sigmoid >= 0.5. Reference vectors are the softmax of their logits; the shadow's and
the target's are the released (calibrated) ones.
"""
from __future__ import annotations

import torch
from torch import nn

from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import fitted_on_shadow
from .mlp import train_binary_mlp


def features(log_probs: torch.Tensor, log: bool) -> torch.Tensor:
    return (log_probs if log else log_probs.exp()).float()


@ATTACKS.register("shokri")
class Shokri(Attack):
    """Shokri et al. 2017: one attack MLP per class on the probability vector, trained on the
    reference (shadow) models' in / out outputs."""

    name = "shokri"
    requires = ("reference_keep", "reference_logits")

    def __init__(self, hidden: int = 64, epochs: int = 30, lr: float = 1e-3, batch_size: int = 256,
                 include_shadow: bool = True, log: bool = False, label: str | None = None):
        if hidden < 1 or epochs < 1 or batch_size < 1:
            raise ConfigError("attack shokri: hidden, epochs and batch_size must be >= 1")
        self.hidden, self.epochs, self.lr, self.batch_size = hidden, epochs, lr, batch_size
        self.include_shadow, self.log = include_shadow, log
        self._label = label

    @property
    def label(self) -> str:
        return self._label or "shokri"

    def training_data(self, members: Signals, nonmembers: Signals):
        """(features [M, C], class [M], in/out [M]) from every reference model on every fit point."""
        xs, cs, ys = [], [], []
        for s, is_member in ((members, 1.0), (nonmembers, 0.0)):
            ref = s.extra["reference_logits"].double().log_softmax(-1)  # [N, K, C]
            n, k, c = ref.shape
            xs.append(features(ref.reshape(n * k, c), self.log))
            cs.append(s.labels_or_predicted.repeat_interleave(k))
            ys.append(s.extra["reference_keep"].reshape(n * k).float())
            if self.include_shadow:
                xs.append(features(s.log_probs, self.log))
                cs.append(s.labels_or_predicted)
                ys.append(torch.full((n,), is_member))
        return torch.cat(xs), torch.cat(cs), torch.cat(ys)

    def train_mlp(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> nn.Module:
        return train_binary_mlp(x, y, hidden=self.hidden, epochs=self.epochs, lr=self.lr,
                                batch_size=self.batch_size, generator=generator)

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        x, cls, y = self.training_data(members, nonmembers)
        num_classes = members.log_probs.shape[1]
        mlps: dict[int, nn.Module] = {}
        sizes = {}
        for c in range(num_classes):
            rows = cls == c
            if int(y[rows].sum()) == 0 or int((1 - y[rows]).sum()) == 0:
                continue  # no in / out data for this class: its queries fall back to the pooled model
            mlps[c] = self.train_mlp(x[rows], y[rows], generator)
            sizes[c] = int(rows.sum())
        pooled = self.train_mlp(x, y, generator) if len(mlps) < num_classes else None

        def score(s: Signals) -> torch.Tensor:
            feats, c = features(s.log_probs, self.log), s.labels_or_predicted
            out = torch.empty(len(s), dtype=torch.float64)
            with torch.no_grad():
                for k in c.unique().tolist():
                    rows = c == k
                    out[rows] = mlps.get(k, pooled)(feats[rows]).squeeze(1).double()
            return out  # the MLP's logit: >= 0 iff sigmoid >= 0.5

        return fitted_on_shadow(score, 0.0, members, nonmembers, decision="sigmoid >= 0.5", attack_models=len(mlps),
                                training_rows=len(y), num_models=members.extra["reference_keep"].shape[1])
