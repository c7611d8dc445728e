"""Last-layer Laplace approximation (LLLA; Kristiadi, Hein, Hennig, ICML 2020) via laplace-torch
(Daxberger et al., NeurIPS 2021).

The head theta = (W, b) of f(x) = W phi(x) + b gets the posterior N(theta_MAP, P^-1) with
P = sum_n GGN_n (Kronecker-factored) + tau I. laplace-torch fits it on the cached training
features phi, with the head as a standalone model (mathematically last-layer Laplace; the
backbone never runs again). GLM predictive: f(x) ~ N(f_mu, Sigma(x)), f_mu = W phi + b,
Sigma(x) = J P^-1 J^T with J = [I_K (x) phi^T, I_K], and

- probit: p = softmax(f_mu / sqrt(1 + pi/8 diag Sigma))  (MacKay 1992; laplace-torch's formula)
- mc:     p = 1/S sum_s softmax(f_s), f_s ~ N(f_mu, Sigma), from a seeded generator.

Prior precision tau: ``marglik`` (laplace-torch's marginal-likelihood optimisation) or
``holdout``: grid search of the NLL on the held-out calibration split, optionally with the
reference study's noise-OOD term, - ood_weight * mean H(p(noise)) (``ood_term: entropy``) or
+ ood_weight * mean max_k p_k(noise) (``ood_term: confidence``).

laplace-torch's generic predictive builds J by autograd per input (seconds per 500 inputs on a
CPU); for a linear head J has the structure above, so Sigma(x) is read off laplace-torch's own
eigendecomposed posterior precision in closed form (``glm_variance``; a test checks it equals
``la.functional_variance``).
"""
from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from overconf.core.errors import ConfigError
from overconf.signals.outputs import Outputs
from overconf.core.seeding import derive_seed, isolated_rng
from .base import CALIBRATIONS, Calibration, CalibrationContext

METHODS = ("marglik", "holdout")
LINKS = ("probit", "mc")
OOD_TERMS = ("entropy", "confidence")
TINY = 1e-300
"""log-probabilities are taken of p clamped to at least this (float64)"""


def fit_laplace(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 8192):
    """laplace-torch's Kronecker-factored Laplace over the head, fitted on cached (phi, y)."""
    from laplace import Laplace

    model = nn.Sequential(copy.deepcopy(head).double())
    la = Laplace(model, "classification", subset_of_weights="all", hessian_structure="kron")
    data = TensorDataset(features.double(), labels.long())
    la.fit(DataLoader(data, batch_size=batch_size, shuffle=False))
    return la


def glm_variance(la, features: torch.Tensor) -> torch.Tensor:
    """Sigma(x) = J P^-1 J^T [N, K, K] for the head fitted by :func:`fit_laplace`.

    With P's weight block (Q1 L1 Q1^T) (x) (Q2 L2 Q2^T) + delta I and J_w = I (x) phi^T:
    Sigma_w = Q1 diag(s) Q1^T, s_i = sum_j (Q2^T phi)_j^2 / (l1_i l2_j + delta); the bias block
    adds its own inverse, (Qb diag(lb + delta_b) Qb^T)^-1."""
    post = la.posterior_precision
    if post.damping:
        raise ValueError("glm_variance expects an undamped Kronecker posterior precision")
    phi = features.double()
    var = torch.zeros(len(phi), la.n_outputs, la.n_outputs, dtype=torch.float64)
    for ls, qs, delta in zip(post.eigenvalues, post.eigenvectors, post.deltas):
        if len(ls) == 2:  # weight [K, D]: Kronecker factors over outputs and inputs
            (l1, l2), (q1, q2) = ls, qs
            s = ((phi @ q2) ** 2) @ (1.0 / (torch.outer(l1, l2) + delta)).T
            var += torch.einsum("ki,ni,li->nkl", q1, s, q1)
        else:  # bias [K]: a full K x K block, the same for every input
            (lb,), (qb,) = ls, qs
            var += (qb / (lb + delta)) @ qb.T
    return var


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(TINY).log()).sum(1)


@CALIBRATIONS.register("llla")
class LastLayerLaplace(Calibration):
    """Last-layer Laplace (K-FAC, laplace-torch) on cached penultimate features; prior precision
    by marginal likelihood or on the held-out split (optional noise-OOD term); probit or seeded
    Monte-Carlo predictive."""

    name = "llla"

    def __init__(self, method: str = "marglik", link: str = "probit", samples: int = 100,
                 ood_weight: float = 0.0, ood_term: str = "entropy", grid_size: int = 41,
                 prior_range: list[float] = (1e-4, 1e4), marglik_steps: int = 100):
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"calibration llla: {message}")

        need(method in METHODS, f"method '{method}' is not allowed; use one of: {', '.join(METHODS)}")
        need(link in LINKS, f"link '{link}' is not allowed; use one of: {', '.join(LINKS)}")
        need(ood_term in OOD_TERMS, f"ood_term '{ood_term}' is not allowed; use one of: {', '.join(OOD_TERMS)}")
        need(isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1,
             f"samples must be a positive integer, got {samples!r}")
        need(isinstance(ood_weight, (int, float)) and ood_weight >= 0,
             f"ood_weight must be a number >= 0, got {ood_weight!r}")
        need(not (ood_weight > 0 and method != "holdout"),
             "ood_weight > 0 needs method: holdout (the noise term is part of the held-out objective)")
        need(isinstance(grid_size, int) and grid_size >= 2, f"grid_size must be an integer >= 2, got {grid_size!r}")
        need(isinstance(prior_range, (list, tuple)) and len(prior_range) == 2
             and all(isinstance(v, (int, float)) and v > 0 for v in prior_range) and prior_range[0] < prior_range[1],
             f"prior_range must be [low, high] with 0 < low < high, got {prior_range!r}")
        need(isinstance(marglik_steps, int) and marglik_steps >= 1, "marglik_steps must be a positive integer")
        self.method, self.link, self.samples = method, link, samples
        self.ood_weight, self.ood_term = float(ood_weight), ood_term
        self.grid_size, self.prior_range, self.marglik_steps = grid_size, tuple(map(float, prior_range)), marglik_steps
        self.requires = ("noise",) if self.ood_weight > 0 else ()
        self.uses_calibration_split = method == "holdout"
        self.la = None
        self.seed = 0
        self.info: dict = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, ctx: CalibrationContext) -> "LastLayerLaplace":
        self.seed = derive_seed(ctx.seed, "llla", "mc")
        with isolated_rng(ctx.seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # laplace-torch's notes on link_approx / deprecated jit
            self.la = fit_laplace(ctx.head, ctx.train.features, ctx.train.labels)
            if self.method == "marglik":
                self.la.optimize_prior_precision(pred_type="glm", method="marglik", prior_structure="scalar",
                                                 n_steps=self.marglik_steps, lr=0.1)
            else:
                self.la.prior_precision = self._holdout(ctx)
            self.info["log_marglik"] = float(self.la.log_marginal_likelihood())
        return self

    def _holdout(self, ctx: CalibrationContext) -> float:
        """argmin_tau NLL(calibration split) [+ noise term] over a log-spaced grid."""
        cal = ctx.calibration
        known = cal.labels >= 0
        if not known.any():
            raise ConfigError("calibration llla (method: holdout) needs labelled calibration-split samples; "
                              "set data.splits.calibration > 0")
        feats, labels = cal.features[known], cal.labels[known]
        noise = ctx.extra.get("noise") if self.ood_weight > 0 else None
        if self.ood_weight > 0 and noise is None:
            raise ValueError("llla with ood_weight > 0 needs ctx.extra['noise'] (the study provides it)")
        lo, hi = (math.log10(v) for v in self.prior_range)
        best = None
        for tau in torch.logspace(lo, hi, self.grid_size, dtype=torch.float64).tolist():
            self.la.prior_precision = tau
            p = self.predict(feats)
            nll = float(-p.gather(1, labels[:, None]).clamp_min(TINY).log().mean())
            objective, terms = nll, {"holdout_nll": nll}
            if noise is not None:
                q = self.predict(noise.features)
                term = float(_entropy(q).mean()) if self.ood_term == "entropy" else float(q.max(1).values.mean())
                terms[f"noise_{self.ood_term}"] = term
                objective += self.ood_weight * (-term if self.ood_term == "entropy" else term)
            if math.isfinite(objective) and (best is None or objective < best[0]):
                best = (objective, tau, terms)
        if best is None:
            raise RuntimeError("llla: the held-out objective is not finite at any prior precision")
        self.info |= {"holdout_objective": best[0], **best[2]}
        return best[1]

    # ------------------------------------------------------------------ prediction
    def predict(self, features: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Predictive probabilities [N, K] (float64) for penultimate features [N, D]."""
        if self.la is None:
            raise RuntimeError("llla: call fit() before predicting")
        head = self.la.model[0]
        parts = []
        for i in range(0, len(features), batch_size):
            phi = features[i: i + batch_size].double()
            with torch.no_grad():
                f_mu = head(phi)
            f_var = glm_variance(self.la, phi)
            if self.link == "probit":
                kappa = 1 / torch.sqrt(1 + math.pi / 8 * f_var.diagonal(dim1=1, dim2=2))
                parts.append(torch.softmax(kappa * f_mu, dim=1))
            else:
                from laplace.utils import normal_samples

                g = torch.Generator().manual_seed(self.seed)  # per batch: p(x) does not depend on the batch
                f = normal_samples(f_mu, f_var, self.samples, generator=g)
                parts.append(torch.softmax(f, dim=-1).mean(0))
        if not parts:
            return torch.empty(0, self.la.n_outputs, dtype=torch.float64)
        return torch.cat(parts)

    def log_probs(self, outputs: Outputs) -> torch.Tensor:
        return self.predict(outputs.features).clamp_min(TINY).log()

    def describe(self) -> dict:
        prior = float(self.la.prior_precision.reshape(-1)[0]) if self.la is not None else float("nan")
        return {"prior_precision": prior,
                "method": self.method, "link": self.link, **({"samples": self.samples} if self.link == "mc" else {}),
                **({"ood_weight": self.ood_weight, "ood_term": self.ood_term} if self.ood_weight > 0 else {}),
                **self.info}
