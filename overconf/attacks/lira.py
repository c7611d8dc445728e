"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022).

phi(x) = log p_y(x) - log sum_{k != y} p_k(x), the scaled logit, is close to Gaussian over the
randomness of training. For each queried point the K reference models split into IN (trained on
it) and OUT models (balanced keep matrix: K / 2 each for the reference data, none IN for any other
input), and with phi_t the target's (released, calibrated) scaled logit:

- online:  score = log N(phi_t; mu_in, s_in^2) - log N(phi_t; mu_out, s_out^2)  (log LR)
- offline: score = log Phi((phi_t - mu_out) / s_out)   (one-sided test under OUT only; the IN
  models are ignored)

mu and s are per point (``variance: per_example``) or s is one pooled within-point deviation
(``variance: global``), fitted on the shadow's fit points. With augmented queries (``augment:
[flip, shift]``) the statistics are per query and the scores are averaged over the queries, as
in the paper. Fallback for a point with fewer than ``min_models`` IN (or OUT) models: the global
deviation; for a point no reference model trained on (OOD and noise inputs; transformed test
images, e.g. ``scaled``, carry the keep status of their originals, so K / 2 models are IN):
mu_in = mu_out + the mean IN - OUT shift of the shadow's fit points and s_in = s_out, so the
score is an equal-variance likelihood ratio, monotone in (phi_t - mu_out) / s_out^2, with no
log-determinant term rewarding a point merely for a wide OUT distribution. Scores are thresholded at the shadow's Youden point (or at a shadow FPR);
each of ``fpr_levels`` (default 1% and 0.1%) gets its own threshold at that FPR on the shadow's
non-members, reported next to its realised FPR per source (``level_<L>_*`` rows).

Options, overconf's default first, then Carlini et al.'s reference code (``fig_fpr_tpr.py``,
``generate_ours`` / ``generate_ours_offline``):
- ``center: mean | median``: mu_in / mu_out are the mean (default) or the median (reference code,
  ``np.median``) of the IN / OUT models' phi.
- ``variance: per_example | global | pooled``: per point (default; reference code without
  ``fix_variance``), the mean within-point variance of the shadow's fit points per side
  (``global``), or one standard deviation over every IN value of the fit points (all points,
  models and queries, so it includes the spread between points) used for both sides online and
  over every OUT value offline (``pooled``: the reference code's ``fix_variance``, whose online
  branch sets ``std_out = np.std(dat_in)``).
- ``ddof: 1 | 0``: variances divide by n - ddof (default 1, unbiased; reference code 0, ``np.std``).
- ``offline_test: one_sided | two_sided``: log Phi((phi_t - mu_out) / s_out) (default: only a
  phi above the OUT distribution looks like a member) or -log N(phi_t; mu_out, s_out^2) (the
  reference code: a phi far from mu_out on either side, or a point with a narrow OUT
  distribution, looks like a member).
- ``unlabelled: own_class | target_class``: inputs without a task label (label -1: OOD, noise)
  are scored with each model's phi at its own predicted class (default; = max_c phi_c, a
  label-free statistic that treats target and reference models alike) or every model at the
  target's predicted class (the former behaviour, which favours the target).
"""
from __future__ import annotations

import math

import torch

from overconf.data.augment import expand_queries
from overconf.core.errors import ConfigError
from .base import ATTACKS, Attack, Fitted, Signals
from .operating_point import at_levels, check_levels, check_rule, operating_point
from .scores import at_label, check_unlabelled, scaled_logit

CENTERS = ("mean", "median")
VARIANCES = ("per_example", "global", "pooled")
OFFLINE_TESTS = ("one_sided", "two_sided")


def masked_stats(v: torch.Tensor, mask: torch.Tensor, ddof: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance (divided by n - ``ddof``) and count of ``v`` [N, A, K] over the models where
    ``mask`` [N, K]."""
    m = mask[:, None, :].double()
    n = m.sum(-1)
    mean = (v * m).sum(-1) / n.clamp(min=1)
    var = ((v - mean[..., None]) ** 2 * m).sum(-1) / (n - ddof).clamp(min=1)
    return mean, var, n


def masked_median(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Median of ``v`` [N, A, K] over the models where ``mask`` [N, K] (the mean of the two middle
    values for an even count, as ``np.median``); 0 where no model is selected."""
    m = mask[:, None, :].expand_as(v)
    n = m.sum(-1, keepdim=True)
    ordered = torch.where(m, v.double(), math.inf).sort(-1).values  # selected values first
    lo, hi = ((n - 1).clamp(min=0) // 2), (n // 2).clamp(max=v.shape[-1] - 1)
    med = (ordered.gather(-1, lo) + ordered.gather(-1, hi)).squeeze(-1) / 2
    return torch.where(n.squeeze(-1) > 0, med, 0.0)


def gaussian_logpdf(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) ** 2 / var + torch.log(2 * math.pi * var))


@ATTACKS.register("lira")
class LiRA(Attack):
    """LiRA (Carlini et al. 2022): Gaussian likelihood ratio of the target's scaled logit under the
    IN vs OUT reference models (online) or a test under OUT (offline, one- or two-sided)."""

    name = "lira"

    def __init__(self, online: bool = True, variance: str = "per_example", augment: list[str] = (),
                 min_models: int = 2, rule: str = "youden", fpr: float | None = None, label: str | None = None,
                 center: str = "mean", ddof: int = 1, offline_test: str = "one_sided",
                 unlabelled: str = "own_class", fpr_levels: list[float] = (0.01, 0.001)):
        for key, value, allowed in (("variance", variance, VARIANCES), ("center", center, CENTERS),
                                    ("offline_test", offline_test, OFFLINE_TESTS)):
            if value not in allowed:
                raise ConfigError(f"attack lira: {key} '{value}' is not allowed; use one of {', '.join(allowed)}")
        if ddof not in (0, 1):
            raise ConfigError(f"attack lira: ddof must be 0 (np.std, the reference code) or 1 (unbiased), got {ddof}")
        if min_models < 2:
            raise ConfigError(f"attack lira: min_models must be >= 2 (a variance needs two models), got {min_models}")
        check_rule("lira", rule, fpr)
        check_unlabelled("lira", unlabelled)
        self.fpr_levels = check_levels("lira", fpr_levels)
        self.online, self.variance, self.min_models, self.rule, self.fpr = online, variance, min_models, rule, fpr
        self.center, self.ddof, self.offline_test, self.unlabelled = center, ddof, offline_test, unlabelled
        self.queries = expand_queries(augment, "attack lira: augment")
        self.requires = ("reference_keep", "reference_logits", *(f"reference_logits:{q}" for q in self.queries),
                         *(f"logits:{q}" for q in self.queries))
        self._label = label

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        return ("lira_online" if self.online else "lira_offline") \
            + ("" if self.variance == "per_example" else f"_{self.variance}") \
            + ("_median" if self.center == "median" else "") + ("_ddof0" if self.ddof == 0 else "") \
            + ("_two_sided" if not self.online and self.offline_test == "two_sided" else "") \
            + (f"_aug{len(self.queries) + 1}" if self.queries else "") \
            + ("_target_class" if self.unlabelled == "target_class" else "")

    def check(self, ctx) -> None:
        if ctx.reference.num_models < 2 * self.min_models:
            raise ConfigError(f"attack {self.label} needs reference.num_models >= {2 * self.min_models} "
                              f"(min_models = {self.min_models} IN and OUT models per point), "
                              f"got {ctx.reference.num_models}")

    # ------------------------------------------------------------------ signals
    def scaled_logits(self, s: Signals) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target phi [N, A], reference phi [N, A, K], keep [N, K]) over the A queries; unlabelled
        inputs at each model's own predicted class or the target's (``unlabelled``)."""
        target = [s.log_probs] + [s.extra[f"logits:{q}"] for q in self.queries]
        refs = [s.extra["reference_logits"]] + [s.extra[f"reference_logits:{q}"] for q in self.queries]
        pred = s.predicted
        phi_t = torch.stack([at_label(scaled_logit, lp, s.labels, pred, self.unlabelled) for lp in target], 1)
        phi_r = torch.stack([at_label(scaled_logit, r.double().log_softmax(-1), s.labels, pred, self.unlabelled)
                             for r in refs], 1)
        return phi_t, phi_r, s.extra["reference_keep"].bool()

    def side_stats(self, phi_r: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Center (mean or median), variance and count of one side's phi [N, A] over ``mask``."""
        mean, var, n = masked_stats(phi_r, mask, self.ddof)
        return (masked_median(phi_r, mask) if self.center == "median" else mean), var, n

    def global_stats(self, phi_r: torch.Tensor, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean within-point variances and the mean IN - OUT shift [A] over points with at least
        ``min_models`` IN and OUT models; for ``variance: pooled`` the variance of every IN (online)
        or OUT (offline) value of those points, one number for both sides."""
        mu_in, var_in, n_in = self.side_stats(phi_r, keep)
        mu_out, var_out, n_out = self.side_stats(phi_r, ~keep)
        ok = (n_in[:, 0] >= self.min_models) & (n_out[:, 0] >= self.min_models)
        if not bool(ok.any()):
            raise ConfigError("attack lira: no shadow fit point has enough IN and OUT reference models; "
                              "raise reference.num_models")
        g = {"var_in": var_in[ok].mean(0), "var_out": var_out[ok].mean(0), "shift": (mu_in[ok] - mu_out[ok]).mean(0)}
        if self.variance == "pooled":
            side = keep[ok] if self.online else ~keep[ok]
            values = phi_r[ok].transpose(1, 2)[side]  # [points x models of that side, A]
            pooled = values.flatten().var(correction=self.ddof)
            g["var_in"] = g["var_out"] = pooled.expand_as(g["var_in"])
        return g

    def score_with(self, s: Signals, g: dict[str, torch.Tensor]) -> torch.Tensor:
        phi_t, phi_r, keep = self.scaled_logits(s)
        mu_in, var_in, n_in = self.side_stats(phi_r, keep)
        mu_out, var_out, n_out = self.side_stats(phi_r, ~keep)
        if self.variance in ("global", "pooled"):
            var_in, var_out = g["var_in"].expand_as(mu_in), g["var_out"].expand_as(mu_out)
        else:
            var_in = torch.where(n_in >= self.min_models, var_in, g["var_in"])
            var_out = torch.where(n_out >= self.min_models, var_out, g["var_out"])
        # no IN (OUT) model at all, e.g. OOD inputs: shifted mean, the other side's variance
        no_in, no_out = n_in == 0, n_out == 0
        mu_in, var_in = torch.where(no_in, mu_out + g["shift"], mu_in), torch.where(no_in, var_out, var_in)
        mu_out, var_out = torch.where(no_out, mu_in - g["shift"], mu_out), torch.where(no_out, var_in, var_out)
        tiny = torch.finfo(torch.float64).tiny
        var_in, var_out = var_in.clamp(min=tiny), var_out.clamp(min=tiny)
        if self.online:
            score = gaussian_logpdf(phi_t, mu_in, var_in) - gaussian_logpdf(phi_t, mu_out, var_out)
        elif self.offline_test == "two_sided":
            score = -gaussian_logpdf(phi_t, mu_out, var_out)
        else:
            score = torch.special.log_ndtr((phi_t - mu_out) / var_out.sqrt())
        # degenerate reference distributions (all-equal phi, e.g. references released through rounding
        # to an aware attacker): a NaN (inf - inf) is no evidence; +-inf and +-1e300 are cut at +-1e30
        return torch.nan_to_num(score, nan=0.0).clamp(-1e30, 1e30).mean(1)

    def fit(self, members: Signals, nonmembers: Signals, *, generator: torch.Generator) -> Fitted:
        _, phi_r, keep = self.scaled_logits(members)
        _, phi_r2, keep2 = self.scaled_logits(nonmembers)
        g = self.global_stats(torch.cat([phi_r, phi_r2]), torch.cat([keep, keep2]))

        def score(s: Signals) -> torch.Tensor:
            return self.score_with(s, g)

        s_in, s_out = score(members), score(nonmembers)
        tau, info = operating_point(s_in, s_out, self.rule, self.fpr)
        info |= {"num_models": keep.shape[1], "queries": len(self.queries) + 1,
                 "global_sd_in": float(g["var_in"][0].sqrt()), "global_sd_out": float(g["var_out"][0].sqrt()),
                 "in_out_shift": float(g["shift"][0])}
        return Fitted(score, tau, info, nominal_fpr=self.fpr, levels=at_levels(score, s_in, s_out, self.fpr_levels))
