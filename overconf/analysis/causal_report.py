"""Markdown tables and figures of the ``causal_memorization`` analysis (:mod:`.causal_analysis`)."""
from __future__ import annotations

import numpy as np


def fmt(v, lo=None, hi=None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and np.isfinite(lo) else "")


def multi_md(mr, k: int, n: int) -> str:
    lines = [f"**Multi-run** ({k} reference models, {n} reference points, each IN for half of the models; score: "
             f"scaled logit; threshold {mr.threshold:g}; 95% bootstrap over models, {mr.n_boot} resamples; standard "
             "potential-outcome forms, named as such; seed 001's full text could not be read here):", "",
             "| estimand | value [CI] |", "|---|---|"]
    lines += [f"| {m} | {fmt(v, mr.low[m], mr.high[m])} |" for m, v in mr.estimates.items()]
    return "\n".join(lines)


def one_md(points, summary: list[dict], base: str) -> str:
    models = max(p.replicate for p in points) + 1
    lines = [f"**One-run** ({models} model(s) per audit-set size m, base = {base}: "
             + ("each one-run model trains on as many points as a reference model, so the bias is interference, not "
                "data size" if base == "half" else "every non-audit point in: a larger training set than a reference "
                "model's, so the bias mixes in a data-size effect") + ") against multi-run on the same audit points; "
             "bias = one-run - multi-run, mean over the one-run models with a 95% Student-t interval over them "
             "(figure `one_run_bias`):", "",
             "| m | model | one-run AUC | multi-run AUC | bias | one-run delta | multi-run delta |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.m} | {p.replicate} | {fmt(p.one_run['auc'], p.low['auc'], p.high['auc'])} | "
                     f"{fmt(*p.multi['auc'])} | {p.one_run['auc'] - p.multi['auc'][0]:+.3f} | "
                     f"{fmt(p.one_run['delta'])} | {fmt(p.multi['delta'][0])} |")
    lines += ["", "| m | mean AUC bias [95% CI] | mean delta bias [95% CI] | models |", "|---|---|---|---|"]
    by = {(r["m"], r["metric"]): r for r in summary}
    for m in sorted({r["m"] for r in summary}):
        a, d = by[(m, "bias_mean_auc")], by[(m, "bias_mean_delta")]
        lines.append(f"| {m} | {fmt(a['value'], a['ci_low'], a['ci_high'])} | {fmt(d['value'], d['ci_low'], d['ci_high'])} "
                     f"| {a['models']} |")
    return "\n".join(lines)


def dp_md(dp: dict) -> str:
    verdict = "significantly violated" if dp["dp_bound_violated"] else "holds (no significant violation)"
    return (f"**DP bound** (the reference models are DP-SGD models): TPR_c(t) <= e^eps FPR_c(t) + delta and "
            f"1 - FPR_c(t) <= e^eps (1 - TPR_c(t)) + delta at every threshold, eps = {dp['dp_epsilon']:.3f} at "
            f"delta = {dp['dp_delta']:g} (opacus' accountant). Largest violation of the estimates "
            f"{dp['dp_bound_max_violation']:+.4f}; with exact Clopper-Pearson limits (Bonferroni over thresholds; "
            f"cells of one point across models are pooled as if independent) {dp['dp_bound_conservative_violation']:+.4f}: "
            f"the bound {verdict}.")


def truth_md(rows: list[dict]) -> str:
    lines = ["**Checks with known truth** (module `overconf.analysis.causal_simulation`): ridge regression with "
             "exact counterfactual scores (leave-one-out / add-one residuals), Bernoulli(1/2) inclusion for multi- "
             "and one-run, a confounded training set (inclusion depends on x_0, heteroscedastic noise) for zero-run; "
             "a Gaussian mechanism with exactly known (eps, delta) for the DP bound.", "",
             "| check | estimand | truth | estimate [CI] | error |", "|---|---|---|---|---|"]
    for r in rows:
        if r["check"] == "dp_bound":
            lines.append(f"| DP bound | {r['metric']} (eps {r['eps']:.3f}, delta {r['delta']:g}) | <= 0 | "
                         f"{r['value']:+.4f} | |")
        elif r["metric"] != "mc_se_auc":
            lines.append(f"| {r['check']} | {r['metric']} | {r['truth']:.4f} | "
                         f"{fmt(r['estimate'], r.get('ci_low'), r.get('ci_high'))} | {r['error']:+.4f} |")
    se = [r["truth"] for r in rows if r["metric"] == "mc_se_auc"]
    if se:
        lines += ["", f"Monte-Carlo standard error of the multi-run truth AUC: {se[0]:.4f}. The G-formula's linear "
                  "outcome model is wrong on purpose in the zero-run task (the noise scale depends on x_0): IPW and "
                  "AIPW (doubly robust) should recover the truth where the G-formula does not."]
    return "\n".join(lines)


def zero_md(frame, params) -> str:
    out = []
    for score, sub in frame.groupby("score", sort=False):
        out.append(_zero_table(sub, params, score))
    return "\n\n".join(out)


def _zero_table(frame, params, score: str) -> str:
    v = frame.pivot_table(index="source", columns="metric", values="value", sort=False, dropna=False)
    lo = frame.pivot_table(index="source", columns="metric", values="ci_low", sort=False, dropna=False)
    hi = frame.pivot_table(index="source", columns="metric", values="ci_high", sort=False, dropna=False)
    what = ("max-score logit of the released outputs" if score == "max_score"
            else "loss score log p_y (labelled sources only)")
    lines = [f"**Zero-run, {score}** (target members vs each source; {what}; propensity on "
             f"{params['covariates']}, {params['folds']}-fold cross-fitted, clipped to [{params['clip']}, "
             f"{1 - params['clip']}]; ATT = reweighted to the members' covariate distribution; standard IPW / G-formula / "
             "AIPW forms, not seed 001's text):", "",
             "| source | naive AUC | IPW AUC (ATT) | G-formula AUC (ATT) | AIPW AUC (ATT) | IPW AUC (ATE) | confounded share "
             "| propensity AUC | ESS | naive - test |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in v.index:
        c = lambda m: fmt(v.loc[s, m], lo.loc[s, m], hi.loc[s, m])  # noqa: E731
        flag = " (no overlap)" if v.loc[s, "propensity_auc"] > 0.95 else ""
        lines.append(f"| {s} | {c('naive_auc')} | {c('ipw_auc')} | {c('gformula_auc')} | {c('aipw_auc')} | {c('ipw_ate_auc')} | "
                     f"{fmt(v.loc[s, 'confounded_share'])} | {v.loc[s, 'propensity_auc']:.3f}{flag} | "
                     f"{v.loc[s, 'ess_out']:.0f} | {fmt(v.loc[s, 'naive_auc_minus_test']) if 'naive_auc_minus_test' in v else 'n/a'} |")
    lines += ["", "Confounded share = (naive AUC - AIPW AUC) / (naive AUC - 0.5) (n/a within 0.05 of chance). A propensity AUC near 1 means "
              "members and the source are separable on the covariates: no overlap, so the corrected numbers rest on "
              "extrapolation and are not identified; only the naive ones are measured there. The `test` source is a "
              "random split of the members' distribution (a randomised benchmark: no confounding), so naive - test "
              "AUC is the design-based size of a source's confounding bias, which needs no overlap."]
    return "\n".join(lines)


def hist(auc: np.ndarray, delta: np.ndarray):
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


def zero_figure(frame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ests = [("naive_auc", "naive"), ("ipw_auc", "IPW (ATT)"), ("gformula_auc", "G-formula (ATT)"),
            ("aipw_auc", "AIPW (ATT)"), ("ipw_ate_auc", "IPW (ATE)")]
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
