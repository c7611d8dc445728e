"""Attack accuracies of one (configuration, repeat): overconf's attacks (registry ATTACKS), fitted
on shadow models and applied to the target, as pure functions of cached outputs.

The shadow of repeat r is the model of repeat (r + 1) mod R (same configuration, disjoint data);
Shokri et al.'s attack uses every other repeat as a shadow (R - 1 shadows): the shadows' outputs on
their own members (IN) and on their own test blocks (OUT) are the training data of one attack MLP
per class (:class:`~overconf.attacks.shokri.Shokri` with ``include_shadow`` and no reference
models). Attack accuracy is (TPR + 1 - FPR) / 2 on ``eval_size`` target members vs as many of its
test block. The max-score threshold's FPR is also read on every non-member source. MemGuard
(Jia et al. 2019): each model's outputs are released through its own fitted MemGuard (defender
non-members: the held-out calibration block) and the aware attacker re-fits on defended shadows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from overconf.attacks import ATTACKS, Signals
from overconf.core.seeding import generator



@dataclass
class ModelView:
    """One model's released log-probabilities on its members, its test block and the sources."""

    members: Signals
    nonmembers: Signals
    sources: dict[str, Signals]


def signals(logits: torch.Tensor, labels: torch.Tensor) -> Signals:
    return Signals(logits.double().log_softmax(-1), labels)


def released(view: ModelView, release: Callable[[torch.Tensor], torch.Tensor], n: int) -> ModelView:
    """The view's first ``n`` members and non-members and its sources, released through ``release``."""
    def r(s: Signals) -> Signals:
        return Signals(release(s.log_probs), s.labels)

    return ModelView(r(_first(view.members, n)), r(_first(view.nonmembers, n)),
                     {k: r(v) for k, v in view.sources.items()})


def make_attacks(mlp_epochs: int, shokri_epochs: int, shokri_hidden: int, loss: str = "cross_entropy") -> dict:
    """The factor table's attacks; the threshold attack on the models' own ``loss`` (the paper: member
    iff the loss is at most the average training loss, the MSE loss for MSE models)."""
    return {"loss": ATTACKS["loss"](rule="mean_train_loss", loss=loss),
            "top3": ATTACKS["salem"](k=3, epochs=mlp_epochs), "top3_label": ATTACKS["salem"](k=3, with_label=True, epochs=mlp_epochs),
            "top10": ATTACKS["salem"](k=10, epochs=mlp_epochs),
            "top10_label": ATTACKS["salem"](k=10, with_label=True, epochs=mlp_epochs),
            "shokri": ATTACKS["shokri"](hidden=shokri_hidden, epochs=shokri_epochs, include_shadow=True),
            "max_score": ATTACKS["max_score"]()}


def _first(s: Signals, n: int) -> Signals:
    return s.subset(slice(0, n))


def _no_references(s: Signals) -> Signals:
    k = s.log_probs.shape[1]
    return Signals(s.log_probs, s.labels, {"reference_logits": torch.empty(len(s), 0, k),
                                           "reference_keep": torch.empty(len(s), 0, dtype=torch.bool)})


def _cat(parts: list[Signals]) -> Signals:
    return Signals(torch.cat([p.log_probs for p in parts]), torch.cat([p.labels for p in parts]))


def attack_row(target: ModelView, shadows: list[ModelView], eval_size: int, attacks: dict, seed: int,
               tag: tuple, suffix: str = "") -> dict[str, float]:
    """attack_<name><suffix> accuracies and fpr_<source><suffix> of the max-score threshold.
    ``shadows[0]`` is the shadow of the single-shadow attacks; Shokri uses all of them."""
    n = min(eval_size, len(target.members), len(target.nonmembers))
    t_in, t_out = _first(target.members, n), _first(target.nonmembers, n)
    row: dict[str, float] = {}
    for name, attack in attacks.items():
        g = generator(seed, "factors", "attack", *tag, name)
        if name == "shokri":
            m = min(n, *(len(s.members) for s in shadows), *(len(s.nonmembers) for s in shadows))
            fitted = attack.fit(_no_references(_cat([_first(s.members, m) for s in shadows])),
                                _no_references(_cat([_first(s.nonmembers, m) for s in shadows])), generator=g)
        else:
            s = shadows[0]
            m = min(n, len(s.members), len(s.nonmembers))
            fitted = attack.fit(_first(s.members, m), _first(s.nonmembers, m), generator=g)
        tpr = float(fitted.decide(t_in).double().mean())
        fpr = float(fitted.decide(t_out).double().mean())
        row[f"attack_{name}{suffix}"] = 0.5 * (tpr + 1 - fpr)
        if name == "max_score":
            row[f"tpr_max_score{suffix}"], row[f"fpr_test{suffix}"] = tpr, fpr
            fprs = []
            for label, src in target.sources.items():
                fprs.append(float(fitted.decide(src).double().mean()))
                row[f"fpr_{label}{suffix}"] = fprs[-1]
            if fprs:
                row[f"fpr_ood{suffix}"] = sum(fprs) / len(fprs)
    return row
