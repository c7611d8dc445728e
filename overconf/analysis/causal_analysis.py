"""The ``causal_memorization`` analysis (seed 001, Even et al. 2026, arXiv 2602.02819): multi-run
estimates from the attacker's reference models (keep matrix + scores), the one-run interference
bias for several audit-set sizes m (several one-run models per m), zero-run IPW / G-formula /
AIPW corrections per non-member source (max-score, and the loss for labelled sources), the DP
bound on DP-SGD settings, and checks of every estimator on tasks with known truth.
Estimators: :mod:`.causal_memorization`, :mod:`.one_run`, :mod:`.zero_run`, :mod:`.dp_bound`,
:mod:`.causal_simulation`. Seed 001's full text is public but could not be read here: every form
is a standard causal-inference estimator, named as such, not the paper's text.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..attacks.scores import finite, scaled_logit
from overconf.core.errors import ConfigError
from overconf.signals.outputs import cached_outputs
from overconf.core.seeding import derive_seed
from .base import ANALYSES, Analysis, AnalysisResult
from .causal_memorization import multi_run
from . import one_run as one
from .zero_run import image_statistics, zero_run
from . import causal_report as rep
from .causal_simulation import dp_report, ridge_report
from .dp_bound import check_multi_run

COVARIATES = ("shadow_features", "image_statistics", "reference_features")


def auto_ms(n: int) -> list[int]:
    """Default audit-set sizes: n/16, n/4 and n (even, at least 2)."""
    return sorted({max(2, (n // d) // 2 * 2) for d in (16, 4, 1)})


def max_score_logit(lp: torch.Tensor) -> torch.Tensor:
    """log p_max - log sum_{k != argmax} p_k: monotone in the max score (same ROC as max_score);
    clamped to +-1e6 (a one-hot release, e.g. the label_only defense, gives +inf)."""
    return finite(scaled_logit(lp, lp.argmax(-1))).clamp(-1e6, 1e6)


@ANALYSES.register("causal_memorization")
class CausalMemorization(Analysis):
    """Causal memorization (seed 001): multi-run, one-run bias curve, zero-run IPW / AIPW per source."""

    name = "causal_memorization"
    title = "Causal memorization (seed 001)"
    defaults: dict[str, Any] = {
        "threshold": 0.0, "tpr_at": [0.01, 0.1], "bootstrap": 200, "confidence": 0.95,
        "one_run_m": "auto", "one_run_base": "half", "one_run_models": 3, "covariates": "shadow_features",
        "folds": 5, "clip": 0.01, "trim": 0.0, "sources": None, "dp_delta": 1e-5, "known_truth": True}

    def check(self, params: dict[str, Any]) -> None:
        where = "analysis.causal_memorization"
        m = params["one_run_m"]
        if m != "auto" and not (isinstance(m, list) and all(isinstance(v, int) and v >= 2 for v in m)):
            raise ConfigError(f"{where}.one_run_m must be 'auto' or a list of integers >= 2 (audit-set sizes; [] "
                              f"skips the one-run models), got {m!r}")
        bases = params["one_run_base"] if isinstance(params["one_run_base"], list) else [params["one_run_base"]]
        if not bases or any(b not in one.BASES for b in bases):
            raise ConfigError(f"{where}.one_run_base must be one of {', '.join(one.BASES)} or a list of them (both: "
                              f"side by side), got {params['one_run_base']!r}")
        if not (isinstance(params["one_run_models"], int) and params["one_run_models"] >= 1):
            raise ConfigError(f"{where}.one_run_models must be an integer >= 1 (one-run models per audit-set size; "
                              f">= 2 gives the bias an interval), got {params['one_run_models']!r}")
        if not isinstance(params["known_truth"], bool):
            raise ConfigError(f"{where}.known_truth must be true or false, got {params['known_truth']!r}")
        if not (isinstance(params["dp_delta"], float) and 0 < params["dp_delta"] < 1):
            raise ConfigError(f"{where}.dp_delta must be a number in (0, 1) (the delta of the DP bound), "
                              f"got {params['dp_delta']!r}")
        if params["covariates"] not in COVARIATES:
            raise ConfigError(f"{where}.covariates must be one of {', '.join(COVARIATES)}, got {params['covariates']!r}")
        if not (isinstance(params["folds"], int) and params["folds"] >= 2):
            raise ConfigError(f"{where}.folds must be an integer >= 2 (cross-fitting folds), got {params['folds']!r}")
        for key, hi in (("clip", 0.5), ("trim", 0.5)):
            if not 0 <= params[key] < hi:
                raise ConfigError(f"{where}.{key} must be in [0, {hi}), got {params[key]!r}")
        if not (isinstance(params["bootstrap"], int) and params["bootstrap"] >= 0):
            raise ConfigError(f"{where}.bootstrap must be an integer >= 0 (0: no intervals), got {params['bootstrap']!r}")
        if not all(0 < x < 1 for x in params["tpr_at"]):
            raise ConfigError(f"{where}.tpr_at must list FPRs in (0, 1), got {params['tpr_at']!r}")

    def run(self, ctx, params) -> AnalysisResult:
        import pandas as pd

        res, md = AnalysisResult(), []
        rs = ctx.reference()
        if rs is None:
            md.append("Multi-run and one-run: not run (the study has no reference-model attack: add lira, rmia or "
                      "shokri to `attacks` for the reference models' keep matrix).")
        else:
            mr, points = self.reference_estimates(ctx, rs, params)
            res.rows += mr.rows(part="multi_run", source="reference")
            table = pd.DataFrame({"pool": [("train", "test")[int(p)] for p in rs.pool], "index": rs.index.numpy(),
                                  "label": rs.labels.numpy(), **mr.points})
            for name in mr.points_low:
                table[f"{name}_ci_low"], table[f"{name}_ci_high"] = mr.points_low[name], mr.points_high[name]
            res.tables["memorization"], res.per_sample = table, ("memorization",)
            res.figures["memorization_hist"] = rep.hist(mr.points["auc"], mr.points["delta"])
            md.append(rep.multi_md(mr, rs.num_models, len(rs.labels)))
            dp = self.dp_bound(ctx, rs, params)
            if dp:
                res.rows += [{"part": "dp_bound", "source": "reference", "metric": k, "value": v,
                              "ci_low": float("nan"), "ci_high": float("nan")} for k, v in dp.items()]
                md.append(rep.dp_md(dp))
            tables = []
            for base, pts in points.items():
                rows = [r for p in pts for r in p.rows(part="one_run", source="reference", base=base)]
                summary = [{"part": "one_run", "source": "reference", "base": base, **r} for r in one.bias_summary(pts)]
                res.rows += rows + summary
                tables += rows + summary
                suffix = "" if len(points) == 1 else f"_{base}"
                res.figures[f"one_run_bias{suffix}"] = one.bias_figure(
                    pts, "auc", f"{ctx.model} / {ctx.setting}: one-run bias (base {base})")
                md.append(rep.one_md(pts, summary, base))
            if tables:
                res.tables["one_run"] = pd.DataFrame(tables)
        zr = self.zero_run(ctx, params)
        res.rows += zr
        if zr:
            frame = pd.DataFrame(zr)
            res.tables["zero_run"] = frame
            res.figures["zero_run_auc"] = rep.zero_figure(frame[frame.score == "max_score"])
            md.append(rep.zero_md(frame, params))
        if params["known_truth"]:
            truth = self.known_truth(ctx.seed)
            res.tables["known_truth"] = pd.DataFrame(truth)
            res.rows += [{"part": "known_truth", "source": r["check"], "metric": r["metric"],
                          "value": r.get("estimate", r.get("value")), "truth": r.get("truth", float("nan")),
                          "ci_low": r.get("ci_low", float("nan")), "ci_high": r.get("ci_high", float("nan"))}
                         for r in truth]
            md.append(rep.truth_md(truth))
        res.markdown = "\n\n".join(md)
        return res

    def reference_estimates(self, ctx, rs, params) -> tuple:
        """(multi-run, one-run points) of the reference set ``rs``: they depend on the reference
        models only, so settings that share the attacker's reference set compute them once (seeds
        derived from the study seed and the reference set's key)."""
        memo = self.__dict__.setdefault("_memo", {})
        key = (ctx.seed, rs.key, repr(sorted((k, params[k]) for k in
                                             ("threshold", "tpr_at", "bootstrap", "confidence", "one_run_m", "one_run_base",
                                              "one_run_models"))))
        if key in memo:
            return memo[key]
        boot = params["bootstrap"]
        scores, keep = one.reference_scores(rs, ctx.cache, ctx.device)
        logits = rs.logits(rs.inputs(), ctx.cache, ctx.device)  # cached: Feldman & Zhang's 0/1 form
        correct = (logits.argmax(-1) == rs.labels[:, None]).T.double()
        mr = multi_run(scores, keep, params["threshold"], tpr_at=tuple(params["tpr_at"]), n_boot=boot, correct=correct,
                       seed=derive_seed(ctx.seed, "causal_memorization", "multi_run", rs.key),
                       confidence=params["confidence"])
        ms = auto_ms(len(rs.labels)) if params["one_run_m"] == "auto" else list(params["one_run_m"])
        too_big = [m for m in ms if m > len(rs.labels)]
        if too_big:
            raise ConfigError(f"analysis.causal_memorization.one_run_m: {too_big} exceed the {len(rs.labels)} "
                              f"reference points; use sizes up to {len(rs.labels)}")
        bases = params["one_run_base"] if isinstance(params["one_run_base"], list) else [params["one_run_base"]]
        points = {base: one.one_run_curve(rs, ctx.cache, ctx.device, ms, seed=derive_seed(ctx.seed, "one_run"),
                                          base=base, threshold=params["threshold"], n_boot=boot,
                                          progress=ctx.context.progress, models=params["one_run_models"])
                  for base in bases} if ms else {}
        memo[key] = (mr, points)
        return mr, points

    def dp_bound(self, ctx, rs, params) -> dict[str, float]:
        """The DP bound TPR_c <= e^eps FPR_c + delta at every threshold of the multi-run curves, when
        the reference models are DP-SGD models (an aware attacker of a dp_sgd setting): eps from
        opacus' accountant for their (noise multiplier, sampling rate, steps) at ``dp_delta``."""
        sigma = getattr(rs.hooks, "noise_multiplier", None)
        if sigma is None:
            return {}
        from ..defenses.dp_sgd import epsilon_reached, sample_rate, steps_per_epoch

        scores, keep = one.reference_scores(rs, ctx.cache, ctx.device)
        n = int(as_keep(keep).sum(1).max())  # training-set size of a reference model
        b, epochs = rs.recipe.batch_size, rs.recipe.epochs
        eps = epsilon_reached(sigma, sample_rate(n, b), epochs * steps_per_epoch(n, b), params["dp_delta"])
        return check_multi_run(scores, keep, eps, params["dp_delta"], params["confidence"]) | {"dp_train_size": float(n)}

    def known_truth(self, seed: int) -> list[dict]:
        """:mod:`.causal_simulation`: the estimators on tasks whose truth is exact (cheap, numpy)."""
        memo = self.__dict__.setdefault("_truth", {})
        if seed not in memo:
            memo[seed] = ridge_report(seed=seed) + dp_report(seed=seed)
        return memo[seed]

    # ------------------------------------------------------------------ zero run
    def covariates(self, ctx, part: str, kind: str) -> np.ndarray:
        """Covariates of the target's ``part`` not affected by the target's training."""
        x, y, _, _ = ctx.inputs("target", part)
        if kind == "image_statistics":
            return image_statistics(x)
        if kind == "reference_features":
            return ctx.reference_features("target", part, 0).numpy()
        shadow = ctx.trained("shadow")  # never trained on target members or the sources
        return cached_outputs(ctx.cache, shadow.key, shadow.model, x, y, ctx.device).features.numpy()

    def zero_run(self, ctx, params) -> list[dict]:
        kind = params["covariates"]
        if kind == "reference_features" and ctx.reference() is None:
            raise ConfigError("analysis.causal_memorization.covariates = reference_features needs reference models "
                              "(a lira, rmia or shokri attack); use shadow_features or image_statistics")
        wanted = params["sources"] or list(ctx.sources)
        unknown = [s for s in wanted if s not in ctx.sources]
        if unknown:
            raise ConfigError(f"analysis.causal_memorization.sources: unknown source(s) {unknown}; the study has "
                              f"{', '.join(ctx.sources)}")
        lp_in, y_in = ctx.log_probs("target", "members"), ctx.inputs("target", "members")[1]
        x_in = self.covariates(ctx, "members", kind)
        rows = []
        for label in wanted:
            part = f"source:{label}"
            lp_out, y_out = ctx.log_probs("target", part), ctx.inputs("target", part)[1]
            x_out = self.covariates(ctx, part, kind)
            for score, s_in, s_out in zero_run_scores(lp_in, y_in, lp_out, y_out):
                r = zero_run(s_in, s_out, x_in, x_out, folds=params["folds"],
                             clip=params["clip"], trim=params["trim"], tpr_at=tuple(params["tpr_at"]),
                             n_boot=params["bootstrap"], seed=ctx.seed_of("zero_run", label),
                             confidence=params["confidence"])
                rows += r.rows(part="zero_run", source=label, covariates=kind, score=score)
        for score in dict.fromkeys(r["score"] for r in rows):
            naive = {r["source"]: r["value"] for r in rows if r["metric"] == "naive_auc" and r["score"] == score}
            if "test" in naive:  # test images are a random split of the members' distribution: no confounding
                rows += [{"part": "zero_run", "source": s, "covariates": kind, "score": score,
                          "metric": "naive_auc_minus_test", "value": v - naive["test"], "ci_low": float("nan"),
                          "ci_high": float("nan")} for s, v in naive.items()]
        return rows


def as_keep(keep) -> np.ndarray:
    """keep as a bool array [K, n]."""
    return np.asarray(keep.numpy() if isinstance(keep, torch.Tensor) else keep, dtype=bool)


def zero_run_scores(lp_in, y_in, lp_out, y_out) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, member scores, source scores): the max-score logit for every source, and the loss
    score log p_y (= -cross-entropy, the seed's loss-based attack) where the source is labelled
    (every label >= 0: test, digits, transformed images; not noise or GAN samples)."""
    out = [("max_score", max_score_logit(lp_in), max_score_logit(lp_out))]
    if len(y_out) and bool((torch.as_tensor(y_out) >= 0).all()):
        loss = lambda lp, y: finite(lp.gather(-1, torch.as_tensor(y).long()[:, None])[:, 0]).clamp(-1e6, 1e6)  # noqa: E731
        out.append(("loss", loss(lp_in, y_in), loss(lp_out, y_out)))
    return out
