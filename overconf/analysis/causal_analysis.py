"""The ``causal_memorization`` analysis (seed 001, Even et al. 2026; issue 14 B): multi-run
estimates from the attacker's reference models (keep matrix + scores), the one-run interference
bias for several audit-set sizes m, and zero-run IPW / AIPW corrections per non-member source.
Estimators: :mod:`.causal_memorization`, :mod:`.one_run`, :mod:`.zero_run` (standard causal
inference forms; seed 001's text is not available, only its abstract).
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
        "one_run_m": "auto", "one_run_base": "rest", "covariates": "shadow_features", "folds": 5,
        "clip": 0.01, "trim": 0.0, "sources": None}

    def check(self, params: dict[str, Any]) -> None:
        where = "analysis.causal_memorization"
        m = params["one_run_m"]
        if m != "auto" and not (isinstance(m, list) and all(isinstance(v, int) and v >= 2 for v in m)):
            raise ConfigError(f"{where}.one_run_m must be 'auto' or a list of integers >= 2 (audit-set sizes; [] "
                              f"skips the one-run models), got {m!r}")
        if params["one_run_base"] not in one.BASES:
            raise ConfigError(f"{where}.one_run_base must be one of {', '.join(one.BASES)}, got {params['one_run_base']!r}")
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
            res.figures["memorization_hist"] = _hist(mr.points["auc"], mr.points["delta"])
            md.append(_multi_md(mr, rs.num_models, len(rs.labels)))
            if points:
                rows = [r for p in points for r in p.rows(part="one_run", source="reference")]
                res.rows += rows
                res.tables["one_run"] = pd.DataFrame(rows)
                res.figures["one_run_bias"] = one.bias_figure(points, "auc", f"{ctx.model} / {ctx.setting}: one-run bias")
                md.append(_one_md(points, params["one_run_base"]))
        zr = self.zero_run(ctx, params)
        res.rows += zr
        if zr:
            frame = pd.DataFrame(zr)
            res.tables["zero_run"] = frame
            res.figures["zero_run_auc"] = _zero_figure(frame)
            md.append(_zero_md(frame, params))
        res.markdown = "\n\n".join(md)
        return res

    def reference_estimates(self, ctx, rs, params) -> tuple:
        """(multi-run, one-run points) of the reference set ``rs``: they depend on the reference
        models only, so settings that share the attacker's reference set compute them once (seeds
        derived from the study seed and the reference set's key)."""
        memo = self.__dict__.setdefault("_memo", {})
        key = (ctx.seed, rs.key, repr(sorted((k, params[k]) for k in
                                             ("threshold", "tpr_at", "bootstrap", "confidence", "one_run_m", "one_run_base"))))
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
        points = one.one_run_curve(rs, ctx.cache, ctx.device, ms, seed=derive_seed(ctx.seed, "one_run"),
                                   base=params["one_run_base"], threshold=params["threshold"], n_boot=boot,
                                   progress=ctx.context.progress) if ms else []
        memo[key] = (mr, points)
        return mr, points

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
        s_in = max_score_logit(ctx.log_probs("target", "members"))
        x_in = self.covariates(ctx, "members", kind)
        rows = []
        for label in wanted:
            part = f"source:{label}"
            s_out = max_score_logit(ctx.log_probs("target", part))
            r = zero_run(s_in, s_out, x_in, self.covariates(ctx, part, kind), folds=params["folds"],
                         clip=params["clip"], trim=params["trim"], tpr_at=tuple(params["tpr_at"]),
                         n_boot=params["bootstrap"], seed=ctx.seed_of("zero_run", label),
                         confidence=params["confidence"])
            rows += r.rows(part="zero_run", source=label, covariates=kind)
        naive = {r["source"]: r["value"] for r in rows if r["metric"] == "naive_auc"}
        if "test" in naive:  # test images are a random split of the members' distribution: no confounding
            rows += [{"part": "zero_run", "source": s, "covariates": kind, "metric": "naive_auc_minus_test",
                      "value": v - naive["test"], "ci_low": float("nan"), "ci_high": float("nan")}
                     for s, v in naive.items()]
        return rows


def _fmt(v, lo=None, hi=None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and np.isfinite(lo) else "")


def _multi_md(mr, k: int, n: int) -> str:
    lines = [f"**Multi-run** ({k} reference models, {n} reference points, each IN for half of the models; score: "
             f"scaled logit; threshold {mr.threshold:g}; 95% bootstrap over models, {mr.n_boot} resamples; standard "
             "potential-outcome forms, not seed 001's text, of which only the abstract is available):", "",
             "| estimand | value [CI] |", "|---|---|"]
    lines += [f"| {m} | {_fmt(v, mr.low[m], mr.high[m])} |" for m, v in mr.estimates.items()]
    return "\n".join(lines)


def _one_md(points, base: str) -> str:
    lines = [f"**One-run** (one model per audit-set size m, base = {base}) against multi-run on the same audit "
             "points; bias = one-run - multi-run (figure `one_run_bias`):", "",
             "| m | one-run AUC | multi-run AUC | bias | one-run delta | multi-run delta |", "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.m} | {_fmt(p.one_run['auc'], p.low['auc'], p.high['auc'])} | "
                     f"{_fmt(*p.multi['auc'])} | {p.one_run['auc'] - p.multi['auc'][0]:+.3f} | "
                     f"{_fmt(p.one_run['delta'])} | {_fmt(p.multi['delta'][0])} |")
    return "\n".join(lines)


def _zero_md(frame, params) -> str:
    v = frame.pivot_table(index="source", columns="metric", values="value", sort=False)
    lo = frame.pivot_table(index="source", columns="metric", values="ci_low", sort=False)
    hi = frame.pivot_table(index="source", columns="metric", values="ci_high", sort=False)
    lines = [f"**Zero-run** (target members vs each source; max-score logit of the released outputs; propensity on "
             f"{params['covariates']}, {params['folds']}-fold cross-fitted, clipped to [{params['clip']}, "
             f"{1 - params['clip']}]; ATT = reweighted to the members' covariate distribution; standard IPW / AIPW "
             "forms, not seed 001's text):", "",
             "| source | naive AUC | IPW AUC (ATT) | AIPW AUC (ATT) | IPW AUC (ATE) | confounded share | propensity AUC | ESS "
             "| naive - test |", "|---|---|---|---|---|---|---|---|---|"]
    for s in v.index:
        c = lambda m: _fmt(v.loc[s, m], lo.loc[s, m], hi.loc[s, m])  # noqa: E731
        flag = " (no overlap)" if v.loc[s, "propensity_auc"] > 0.95 else ""
        lines.append(f"| {s} | {c('naive_auc')} | {c('ipw_auc')} | {c('aipw_auc')} | {c('ipw_ate_auc')} | "
                     f"{_fmt(v.loc[s, 'confounded_share'])} | {v.loc[s, 'propensity_auc']:.3f}{flag} | "
                     f"{v.loc[s, 'ess_out']:.0f} | {_fmt(v.loc[s, 'naive_auc_minus_test']) if 'naive_auc_minus_test' in v else 'n/a'} |")
    lines += ["", "Confounded share = (naive AUC - AIPW AUC) / (naive AUC - 0.5) (n/a within 0.05 of chance). A propensity AUC near 1 means "
              "members and the source are separable on the covariates: no overlap, so the corrected numbers rest on "
              "extrapolation and are not identified; only the naive ones are measured there. The `test` source is a "
              "random split of the members' distribution (a randomised benchmark: no confounding), so naive - test "
              "AUC is the design-based size of a source's confounding bias, which needs no overlap."]
    return "\n".join(lines)


def _hist(auc: np.ndarray, delta: np.ndarray):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].hist(auc[np.isfinite(auc)], bins=30)
    axes[0].set_xlabel("per-point memorization m_i = P(S(1) > S(0))")
    axes[1].hist(delta[np.isfinite(delta)], bins=30)
    axes[1].set_xlabel("mean IN - mean OUT scaled logit")
    for ax in axes:
        ax.set_ylabel("points")
    fig.tight_layout()
    return fig


def _zero_figure(frame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ests = [("naive_auc", "naive"), ("ipw_auc", "IPW (ATT)"), ("aipw_auc", "AIPW (ATT)"), ("ipw_ate_auc", "IPW (ATE)")]
    sources = list(dict.fromkeys(frame["source"]))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(sources) + 2), 3.8))
    width = 0.8 / len(ests)
    for j, (metric, label) in enumerate(ests):
        sub = frame[frame.metric == metric].set_index("source").reindex(sources)
        err = np.abs(np.vstack([sub.ci_low, sub.ci_high]) - sub.value.to_numpy())
        ax.bar(np.arange(len(sources)) + j * width, sub.value, width, label=label,
               yerr=np.nan_to_num(err), capsize=2)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    pa = frame[frame.metric == "propensity_auc"].set_index("source").value
    ax.set_xticks(np.arange(len(sources)) + 0.4 - width / 2,
                  [f"{s}\n(no overlap)" if pa.get(s, 0) > 0.95 else s for s in sources])
    ax.set_ylabel("AUC members vs source")
    ax.set_title("zero-run: naive vs confounding-corrected AUC")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
