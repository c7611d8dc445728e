"""QMIA, membership inference by quantile regression (Bertran et al., "Scalable Membership
Inference Attacks via Quantile Regression", NeurIPS 2023; the authors' code: amazon-science/quantile-mia).

The attacker regresses the target's score s(x, y) on the input, on public non-member data only,
and flags x as a member iff its score exceeds the predicted (1 - alpha)-quantile of non-member
scores at x:

    member  <=>  s(x, y) >= q_{1 - alpha}(x, y).

The score is the hinge s = z_y - max_{k != y} z_k (the authors' ``label_logit_and_hinge_scoring_fn``),
computed from what the target releases (log p_y - max_{k != y} log p_k, equal to the logit hinge
for an uncalibrated model), or the scaled logit log p_y - log sum_{k != y} p_k (``score:
scaled_logit``). No shadow and no reference model: the regressor (overconf.attacks.quantile_regression)
is the only trained artifact. If q were the true conditional quantile, the FPR on non-members
drawn like the public data would be alpha for every x, hence alpha overall: the nominal FPR is
alpha by construction, and the study reports how it holds on ``test`` and fails or holds on each
OOD, transformed and GAN source.

Decision rules: ``pinball``, score(x) = s(x, y) - q_{1 - alpha}(x, y) with threshold 0, and for each
requested level L of ``fpr_levels`` s - q_{1 - L} >= 0 (the regressor is trained for every level);
``gaussian``, the standardised score (s - mu(x, y)) / sigma(x, y) with threshold Phi^-1(1 - alpha)
(Phi^-1(1 - L) per level), so its ROC sweeps the quantile level as the authors' ROC does. Inputs
without a task label (OOD, noise) are scored at the target's predicted class.
"""
from __future__ import annotations

import math

import torch
from scipy.stats import norm

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from overconf.signals.outputs import cached_outputs
from overconf.signals.producers import SIGNALS, SignalContext, SignalRequest
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import check_levels
from .quantile_regression import HEADS, RegressorSpec, load_or_train_regressor
from .scores import finite, scaled_logit, true_class_log_prob

SCORES = ("hinge", "scaled_logit")
PUBLIC = ("calibration", "reserve")


def hinge(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k from log-probabilities or logits ``lp`` [N, K] (the normaliser cancels)."""
    lp = lp.double()
    return true_class_log_prob(lp, y) - lp.scatter(1, y.long()[:, None], -math.inf).max(1).values


def score_of(kind: str, lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return finite(hinge(lp, y) if kind == "hinge" else scaled_logit(lp, y))


# ---------------------------------------------------------------------------------- the signal
def public_points(ctx: SignalContext, public: str, public_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(model inputs, labels) of the public non-members: the calibration split, or the first
    ``public_size`` points of the reserve (images the target never saw)."""
    seed_ctx = ctx.context
    ds, splits = seed_ctx.dataset, seed_ctx.splits
    if public == "calibration":
        images, labels = splits.images(ds, "calibration")
    else:
        idx = splits.reserve[:public_size]
        images, labels = ds.train_x[idx], ds.train_y[idx]
    return ctx.job.normalize(images), labels


def public_scores(ctx: SignalContext, x: torch.Tensor, labels: torch.Tensor, score: str) -> torch.Tensor:
    """The queried model's released score on the public points (cached outputs, then its release)."""
    outs = cached_outputs(ctx.cache, ctx.model_key, ctx.model, x, labels, ctx.device)
    lp = ctx.release(outs) if ctx.release is not None else outs.logits.double().log_softmax(-1)
    return score_of(score, lp, labels)


def _spec(params: dict) -> RegressorSpec:
    return RegressorSpec(**{k: v for k, v in params.items() if k not in ("public", "public_size", "score")})


def _regressor(ctx: SignalContext, **params):
    x, labels = public_points(ctx, params["public"], params["public_size"])
    scores = public_scores(ctx, x, labels, params["score"])
    return load_or_train_regressor(_spec(params), x, labels, scores, ctx.context.dataset.num_classes, ctx.cache,
                                   ctx.device, name=f"qmia regressor of {getattr(ctx.job, 'name', ctx.model_key)}")


def _release_key(ctx: SignalContext):
    """What the signal depends on beyond the model, the queried points and the request: the seed's
    public data and the target's release (calibration, release-time defense). Both are identified by
    the digest of the released log-probabilities and labels on the calibration split (the reserve
    follows the calibration split in the seed's split order). Nothing for the shadow."""
    if ctx.role != "target":
        return "not trained for the shadow"
    ds, splits = ctx.context.dataset, ctx.context.splits
    images, labels = splits.images(ds, "calibration")
    outs = cached_outputs(ctx.cache, ctx.model_key, ctx.model, ctx.job.normalize(images), labels, ctx.device)
    lp = ctx.release(outs) if ctx.release is not None else outs.logits.double().log_softmax(-1)
    return [tensor_digest(lp.double()), tensor_digest(labels), len(splits.reserve)]


def qmia_quantiles(ctx: SignalContext, **params) -> torch.Tensor:
    """The target's predicted non-member score quantiles at the queried points, float64 [N, C, Q]
    (pinball: one per level) or [N, C, 2] (gaussian: mu, sigma), for every class C. QMIA attacks
    the target alone: the shadow's queries get NaN (nothing is trained for it)."""
    num_classes = ctx.context.dataset.num_classes
    if ctx.role != "target":
        q = 2 if params["head"] == "gaussian" else len(params["taus"])
        return torch.full((len(ctx.x), num_classes, q), math.nan, dtype=torch.float64)
    return _regressor(ctx, **params).predict(ctx.x, ctx.device)


qmia_quantiles.key_extra = _release_key
SIGNALS.register("qmia_quantiles")(qmia_quantiles)


# ---------------------------------------------------------------------------------- the attack
@ATTACKS.register("qmia")
class QMIA(Attack):
    """QMIA (Bertran et al. 2023): member iff the target's score exceeds the (1 - alpha)-quantile
    predicted by a regressor trained on public non-members (no shadow, no reference models)."""

    name = "qmia"

    def __init__(self, alpha: float = 0.01, head: str = "pinball", score: str = "hinge",
                 fpr_levels: list[float] = (0.01, 0.001), public: str = "calibration", public_size: int | None = None,
                 epochs: int = 30, width: int = 16, hidden: int = 64, lr: float = 1e-3, batch_size: int = 128,
                 weight_decay: float = 0.0, seed: int = 0, label: str | None = None):
        for key, value, allowed in (("head", head, HEADS), ("score", score, SCORES), ("public", public, PUBLIC)):
            if value not in allowed:
                raise ConfigError(f"attack qmia: {key} '{value}' is not allowed; use one of {', '.join(allowed)}")
        if not 0 < alpha < 1:
            raise ConfigError(f"attack qmia: alpha (the nominal FPR) must lie in (0, 1), got {alpha}")
        if public == "reserve" and (public_size is None or int(public_size) < 1):
            raise ConfigError("attack qmia: public: reserve needs public_size >= 1 (how many reserve points the "
                              "regressor trains on), e.g. public_size: 10000")
        for key, value in (("epochs", epochs), ("width", width), ("hidden", hidden), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ConfigError(f"attack qmia: {key} must be >= 1, got {value}")
        self.alpha, self.head, self.score_kind, self.public = float(alpha), head, score, public
        self.public_size = None if public == "calibration" else int(public_size)
        self.fpr_levels = check_levels("qmia", fpr_levels)
        taus = tuple(sorted({round(1 - a, 12) for a in (self.alpha, *self.fpr_levels)})) if head == "pinball" else ()
        self.request = SignalRequest.of("qmia_quantiles", head=head, taus=taus, public=public,
                                        public_size=self.public_size, score=score, epochs=int(epochs),
                                        width=int(width), hidden=int(hidden), lr=float(lr),
                                        batch_size=int(batch_size), weight_decay=float(weight_decay), seed=int(seed))
        self.taus = taus
        self.requires = (self.request,)
        self._label = label

    @property
    def label(self) -> str:
        return self._label or ("qmia" if self.head == "pinball" else "qmia_gaussian") \
            + ("" if self.score_kind == "hinge" else f"_{self.score_kind}")

    def check(self, ctx) -> None:
        n = len(ctx.splits.calibration) if self.public == "calibration" else len(ctx.splits.reserve)
        if self.public == "calibration" and n < 2:
            raise ConfigError(f"attack {self.label} trains on the calibration split, which has {n} points; "
                              f"raise data.splits.calibration or use public: reserve")
        if self.public == "reserve" and n < self.public_size:
            raise ConfigError(f"attack {self.label}: public_size = {self.public_size} exceeds the {n} reserve points; "
                              f"lower public_size or the data.splits sizes")

    # ------------------------------------------------------------------ decision rules
    def statistic(self, s: Signals) -> torch.Tensor:
        return score_of(self.score_kind, s.log_probs, s.labels_or_predicted)

    def _at_label(self, s: Signals) -> torch.Tensor:
        """The regressor's outputs at each point's label (or the predicted class): [N, Q or 2]."""
        q = s.extra[self.request.key]
        return q[torch.arange(len(q)), s.labels_or_predicted]

    def margin(self, tau: float):
        """score(x) = s(x, y) - q_tau(x, y) (pinball head)."""
        j = self.taus.index(round(tau, 12))

        def score(s: Signals) -> torch.Tensor:
            return finite(self.statistic(s) - self._at_label(s)[:, j])

        return score

    def standardised(self, s: Signals) -> torch.Tensor:
        """(s(x, y) - mu(x, y)) / sigma(x, y) (gaussian head)."""
        q = self._at_label(s)
        return finite((self.statistic(s) - q[:, 0]) / q[:, 1])

    def rule(self, level: float) -> tuple:
        """(score, threshold) of the rule with nominal FPR ``level``."""
        if self.head == "gaussian":
            return self.standardised, float(norm.ppf(1 - level))
        return self.margin(1 - level), 0.0

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        """Nothing is fitted on the shadow: the rules are the regressor's quantiles (trained on public
        non-members by the ``qmia_quantiles`` signal)."""
        score, threshold = self.rule(self.alpha)
        levels = {}
        for level in self.fpr_levels:
            f, t = (score, threshold) if level == self.alpha else self.rule(level)
            levels[level] = Fitted(f, t, {"rule": f"public quantile 1 - {level:g}"}, nominal_fpr=level)
        info = {"rule": f"public quantile 1 - {self.alpha:g}", "alpha": self.alpha, "threshold": threshold}
        return Fitted(score, threshold, info, nominal_fpr=self.alpha, levels=levels)
