"""Nominal vs realised FPR, per source and attack: summary.md's table, nominal_fpr.csv, a figure
(also in TensorBoard).

Every thresholded attack declares the FPR its rule was set for: a requested level (LiRA / RMIA
``fpr`` or ``fpr_levels``, QMIA's alpha and levels) or, by default, the shadow's FPR at the
fitted threshold. The rows (overconf.metrics.nominal) hold, per source, the realised FPR with its
exact Clopper-Pearson interval, the exact binomial p-value of "realised = nominal" and a flag
where the nominal lies outside the interval. Here the p-values of the whole run (every source x
attack x rule x model x setting x seed) are corrected together by Benjamini-Hochberg
(overconf.report.multiplicity): a promise counts as *broken* where its q-value is below the FDR.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .multiplicity import FDR, benjamini_hochberg
from .tables import markdown_table, ordered, write_csv

MAIN = "threshold"
"""the rule name of an attack's main threshold (else ``level <L>``)"""
LEVEL = re.compile(r"^level_(.+)_fpr$")
CSV_COLUMNS = ["model", "seed", "setting", "attack", "rule", "set_on", "source", "n", "nominal_fpr", "fpr", "fpr_ci_low",
               "fpr_ci_high", "p_value", "q_value", "broken", "broken_fdr"]


def records(rows: list[dict], q: float = FDR) -> list[dict]:
    """One record per (model, seed, setting, attack, rule, source) with a declared FPR: nominal (set
    on: ``shadow``, the shadow's FPR at the fitted threshold, or ``requested``, a level),
    realised FPR and interval, p-value, ``broken`` (nominal outside the interval), and the
    Benjamini-Hochberg q-value and decision over all of them (``broken_fdr``). A level whose rule
    is the main threshold (QMIA's alpha among its levels) appears once, as the threshold."""
    cells: dict[tuple, dict[str, float]] = defaultdict(dict)
    shadow_fpr = {}
    for r in rows:
        if r["attack"] != "-" and r["source"] != "shadow":
            cells[(r["model"], r["seed"], r["setting"], r["attack"], r["source"])][r["metric"]] = r["value"]
        elif r["source"] == "shadow" and r["metric"] == "shadow_fpr":
            shadow_fpr[(r["model"], r["seed"], r["setting"], r["attack"])] = r["value"]
    out = []
    for (model, seed, setting, attack, source), m in cells.items():
        base = {"model": model, "seed": seed, "setting": setting, "attack": attack, "source": source,
                "n": m.get("n_nonmembers", math.nan)}
        if "nominal_fpr" in m:
            on = "shadow" if shadow_fpr.get((model, seed, setting, attack)) == m["nominal_fpr"] else "requested"
            out.append(base | {"rule": MAIN, "set_on": on, "nominal_fpr": m["nominal_fpr"], "fpr": m.get("fpr", math.nan),
                               "fpr_ci_low": m.get("fpr_ci_low", math.nan), "fpr_ci_high": m.get("fpr_ci_high", math.nan),
                               "p_value": m.get("nominal_fpr_p_value", math.nan),
                               "broken": m.get("nominal_fpr_broken", math.nan)})
        for metric in m:
            hit = LEVEL.match(metric)
            if hit:
                p = f"level_{hit.group(1)}_"
                out.append(base | {"rule": f"level {hit.group(1)}", "set_on": "requested",
                                   "nominal_fpr": float(hit.group(1)),
                                   "fpr": m[p + "fpr"], "fpr_ci_low": m[p + "fpr_ci_low"],
                                   "fpr_ci_high": m[p + "fpr_ci_high"], "p_value": m[p + "p_value"],
                                   "broken": m[p + "broken"]})
    out = _without_repeated_rules(out)
    rejected, adjusted = benjamini_hochberg([r["p_value"] for r in out], q)
    for r, rej, adj in zip(out, rejected, adjusted):
        r["q_value"], r["broken_fdr"] = adj, float(rej)
    return out


def _without_repeated_rules(recs: list[dict]) -> list[dict]:
    """Drop a level whose nominal and realised FPR equal the main threshold's on every source."""
    main = {(r["model"], r["seed"], r["setting"], r["attack"], r["source"]): r for r in recs if r["rule"] == MAIN}
    same: dict[tuple, bool] = {}
    for r in recs:
        if r["rule"] != MAIN:
            k = (r["model"], r["seed"], r["setting"], r["attack"], r["rule"])
            m = main.get((r["model"], r["seed"], r["setting"], r["attack"], r["source"]))
            equal = m is not None and m["nominal_fpr"] == r["nominal_fpr"] and m["fpr"] == r["fpr"]
            same[k] = same.get(k, True) and equal
    return [r for r in recs if r["rule"] == MAIN
            or not same[(r["model"], r["seed"], r["setting"], r["attack"], r["rule"])]]


def write_nominal_csv(recs: list[dict], path: Path) -> None:
    write_csv(recs, path, CSV_COLUMNS, extrasaction="ignore")


def _pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _rules(recs: list[dict]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["attack"], r["rule"]) for r in recs))


def _row_label(attack: str, rule: str) -> str:
    return attack if rule == MAIN else f"{attack} @ {float(rule.split()[1]):.2%}"


def off(r: dict, side: str) -> bool:
    """Whether the realised FPR differs from the nominal after BH, on ``side``: 'above' (the promise
    is broken: more false positives than promised) or 'below' (conservative)."""
    return r["broken_fdr"] == 1.0 and (r["fpr"] > r["nominal_fpr"] if side == "above" else r["fpr"] < r["nominal_fpr"])


def cell_text(group: list[dict]) -> str:
    """One source's realised FPR in percent: with its interval (one seed) or mean±sd and the seeds
    that differ from the nominal after BH; bold where they do, with an arrow: above / below."""
    fpr = [r["fpr"] for r in group]
    above, below = sum(off(r, "above") for r in group), sum(off(r, "below") for r in group)
    if len(group) == 1:
        r = group[0]
        text = f"{_pct(r['fpr'])} [{_pct(r['fpr_ci_low'])}, {_pct(r['fpr_ci_high'])}]"
    else:
        text = f"{_pct(float(np.mean(fpr)))}±{_pct(float(np.std(fpr, ddof=1)))} ({above + below}/{len(group)})"
    if not above + below:
        return text
    return f"**{text}** " + ("↑" if above >= below else "↓")


def nominal_table(recs: list[dict], model: str, setting: str) -> tuple[list[str], list[list[str]]]:
    mine = [r for r in recs if r["model"] == model and r["setting"] == setting]
    sources = ordered(mine, "source")
    body = []
    for attack, rule in _rules(mine):
        these = [r for r in mine if r["attack"] == attack and r["rule"] == rule]
        nominal = float(np.mean([r["nominal_fpr"] for r in these]))
        how = "shadow" if all(r["set_on"] == "shadow" for r in these) else "requested"
        body.append([_row_label(attack, rule), f"{_pct(nominal)} ({how})"]
                    + [cell_text([r for r in these if r["source"] == s]) if any(r["source"] == s for r in these)
                       else "–" for s in sources])
    return ["attack / rule", "nominal % (set on)"] + [f"{s} %" for s in sources], body


def broken_lines(recs: list[dict], model: str, setting: str, most: int = 6) -> list[str]:
    """'attack (nominal x%): broken on source realised% [lo, hi], ...' for the promises broken after
    BH (realised above the nominal)."""
    out = []
    mine = [r for r in recs if r["model"] == model and r["setting"] == setting and off(r, "above")]
    for attack, rule in _rules(mine):
        these = [r for r in mine if r["attack"] == attack and r["rule"] == rule]
        these.sort(key=lambda r: -abs(r["fpr"] - r["nominal_fpr"]))
        parts = [f"{r['source']} {_pct(r['fpr'])}% [{_pct(r['fpr_ci_low'])}, {_pct(r['fpr_ci_high'])}]"
                 + (f" (seed {r['seed']})" if len({x['seed'] for x in recs}) > 1 else "") for r in these[:most]]
        more = f", and {len(these) - most} more" if len(these) > most else ""
        out.append(f"- `{_row_label(attack, rule)}` (nominal {_pct(these[0]['nominal_fpr'])}%): broken on "
                   + ", ".join(parts) + more)
    return out


def nominal_summary(rows: list[dict], cfg, q: float = FDR) -> list[str]:
    """summary.md's section: per (model, setting) the table and the broken promises; the FDR statement."""
    recs = records(rows, q)
    if not recs:
        return []
    tests = [r for r in recs if not math.isnan(r["p_value"])]
    n_above, n_below = sum(off(r, "above") for r in recs), sum(off(r, "below") for r in recs)
    n_raw = sum(r["broken"] == 1.0 for r in recs)
    out = ["## Nominal vs realised FPR per source", "",
           "Each attack's rule promises an FPR: the level it was set for (requested: LiRA / RMIA `fpr` and "
           "`fpr_levels`, set on the shadow's non-members; QMIA's alpha and levels, its quantile regressor's "
           "levels on public non-members), else the shadow's FPR at the fitted threshold (set on: shadow). "
           f"Per source: the realised FPR with its {cfg.metrics.confidence:.0%} Clopper-Pearson interval, in percent "
           "(several seeds: mean±sd and the number of seeds that differ). **Bold**: the realised FPR differs from "
           "the nominal, i.e. the exact binomial test of realised = nominal rejects after Benjamini-Hochberg false "
           f"discovery rate control at {q:.0%} over all {len(tests)} tests of this run (every source x attack x "
           f"rule x setting x seed; statsmodels `multipletests`, `fdr_bh`); ↑: above the nominal, the promise is "
           f"broken ({n_above}); ↓: below it, conservative ({n_below}); {n_raw} nominals lie outside the unadjusted "
           "interval. Every test, with its p- and q-value: `nominal_fpr.csv`; figure: "
           "`figures/nominal_vs_realised_*.png`.", ""]
    for model in ordered(recs, "model"):
        for setting in ordered(recs, "setting"):
            header, body = nominal_table(recs, model, setting)
            if not body:
                continue
            out += [f"### {model} / {setting}", "", markdown_table(header, body), ""]
            lines = broken_lines(recs, model, setting)
            out += (["Promises broken (realised above nominal, after BH):", ""] + lines + [""]) if lines \
                else ["No promise is broken after BH.", ""]
    return out


# ---------------------------------------------------------------------------------- figure
def nominal_figure(recs: list[dict], model: str, setting: str):
    """Heat map: one row per attack rule, one column per source; colour log10(realised / nominal)
    (each offset by half a point, 0.5 / n, so that 0 stays finite), text the realised FPR in
    percent (bold where it differs from the nominal after BH), a black frame where it is above it."""
    from .artifacts import plt

    mine = [r for r in recs if r["model"] == model and r["setting"] == setting]
    rules, sources = _rules(mine), ordered(mine, "source")
    ratio = np.full((len(rules), len(sources)), np.nan)
    text = [["" for _ in sources] for _ in rules]
    frame = np.zeros_like(ratio, dtype=bool)
    bold = np.zeros_like(ratio, dtype=bool)
    for i, (attack, rule) in enumerate(rules):
        for j, s in enumerate(sources):
            g = [r for r in mine if r["attack"] == attack and r["rule"] == rule and r["source"] == s]
            if not g:
                continue
            fpr, nominal = float(np.mean([r["fpr"] for r in g])), float(np.mean([r["nominal_fpr"] for r in g]))
            half = 0.5 / (g[0]["n"] if g[0]["n"] > 0 else 1.0)
            ratio[i, j] = math.log10((fpr + half) / (nominal + half))
            text[i][j] = _pct(fpr)
            frame[i, j] = any(off(r, "above") for r in g)
            bold[i, j] = any(r["broken_fdr"] == 1.0 for r in g)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(sources) + 2.4, 1.2 + 0.32 * len(rules)), layout="constrained")
    im = ax.imshow(ratio, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    for i in range(len(rules)):
        for j in range(len(sources)):
            if text[i][j]:
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=6.5,
                        fontweight="bold" if bold[i, j] else "normal")
            if frame[i, j]:
                ax.add_patch(plt.Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, lw=1.2, ec="black"))
    nominal = {(a, ru): float(np.mean([r["nominal_fpr"] for r in mine if r["attack"] == a and r["rule"] == ru]))
               for a, ru in rules}
    ax.set_yticks(range(len(rules)), [f"{_row_label(a, ru)} ({_pct(nominal[(a, ru)])}%)" for a, ru in rules],
                  fontsize=7)
    ax.set_xticks(range(len(sources)), sources, rotation=30, ha="right", fontsize=7)
    ax.set_title(f"{model} / {setting}: realised FPR % (nominal in brackets); framed: above the nominal "
                 f"(BH, FDR {FDR:.0%})",
                 fontsize=8)
    fig.colorbar(im, ax=ax, label="log10(realised / nominal)", shrink=0.8)
    return fig


def write_nominal(result, run_dir: Path, cache=None) -> list[Path]:
    """nominal_fpr.csv and, with figures on, figures/nominal_vs_realised_<model>_<setting>.png."""
    from .artifacts import cached_png
    from .figures import slug

    recs = records(result.rows)
    if not recs:
        return []
    write_nominal_csv(recs, run_dir / "nominal_fpr.csv")
    written = []
    if result.config.report.figures:
        for model in ordered(recs, "model"):
            for setting in ordered(recs, "setting"):
                def draw(model=model, setting=setting):
                    return nominal_figure(recs, model, setting)

                path = run_dir / "figures" / f"nominal_vs_realised_{slug(model)}_{slug(setting)}.png"
                shown = [r for r in recs if r["model"] == model and r["setting"] == setting]
                written.append(cached_png(cache, path, {"records": shown}, draw, dpi=120))
    return written
