"""Memorised or different? The blind baseline per source (rows of overconf.runner.blind_baseline,
``metrics.blind_baseline``): ``blind_baseline.csv`` (one record per seed, model, setting, source and
attack) and summary.md's section (docs/memorised-or-different.md).

An attack's "leakage" on a source is *explained by difference alone* when the blind classifier,
which never queries the target, does at least as well: the interval of AUROC_attack - AUROC_blind
(paired DeLong) reaches 0 or below (``explained`` = 1). A source is explained when every attack's is.
"""
from __future__ import annotations

import math
from pathlib import Path

from .tables import markdown_table, ordered, write_csv

KEY = ("seed", "model", "setting", "source", "attack")
SOURCE_METRICS = {"blind_auc": "blind_auc", "blind_auc_lo": "blind_auc_lo", "blind_auc_hi": "blind_auc_hi",
                  "propensity_auc": "propensity_auc", "blind_crossfit": "blind_crossfit"}
ATTACK_METRICS = {"auroc": "attack_auc", "auc_minus_blind": "diff", "auc_minus_blind_lo": "diff_lo",
                  "auc_minus_blind_hi": "diff_hi", "blind_tpr_at_attack_fpr": "blind_tpr_at_attack_fpr",
                  "fpr": "attack_fpr", "tpr": "attack_tpr", "blind_fpr_at_declared": "blind_fpr_at_declared"}
COLUMNS = [*KEY, "attack_auc", "blind_auc", "blind_auc_lo", "blind_auc_hi", "diff", "diff_lo", "diff_hi",
           "explained", "propensity_auc", "blind_crossfit", "attack_fpr", "attack_tpr", "blind_tpr_at_attack_fpr",
           "blind_fpr_at_declared"]


def records(rows: list[dict]) -> list[dict]:
    """One record per (seed, model, setting, source, attack) that has a blind comparison."""
    per_source: dict[tuple, dict] = {}
    per_attack: dict[tuple, dict] = {}
    for r in rows:
        where = (r["seed"], r["model"], r["setting"], r["source"])
        if r["attack"] == "-" and r["metric"] in SOURCE_METRICS:
            per_source.setdefault(where, {})[SOURCE_METRICS[r["metric"]]] = r["value"]
        elif r["attack"] != "-" and r["metric"] in ATTACK_METRICS:
            per_attack.setdefault((*where, r["attack"]), {})[ATTACK_METRICS[r["metric"]]] = r["value"]
    out = []
    for key, values in per_attack.items():
        if "diff" not in values:
            continue
        rec = dict(zip(KEY, key)) | {c: math.nan for c in COLUMNS if c not in KEY}
        rec |= per_source.get(key[:4], {}) | values
        rec["explained"] = float(rec["diff_lo"] <= 0)
        out.append(rec)
    return out


def write_blind_csv(rows: list[dict], path: Path) -> Path | None:
    recs = records(rows)
    return write_csv(recs, path, COLUMNS) if recs else None


def _f(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def source_table(recs: list[dict], model: str, setting: str, seed: int) -> tuple[list[str], list[list[str]]]:
    """Per source: blind AUROC [interval], propensity AUC, the best attack, its AUROC and its
    difference to the blind one [interval], and how many attacks the difference explains."""
    header = ["source", "blind AUROC", "propensity AUC", "best attack", "attack AUROC", "attack - blind",
              "explained by difference"]
    body = []
    mine = [r for r in recs if (r["model"], r["setting"], r["seed"]) == (model, setting, seed)]
    for source in ordered(mine, "source"):
        rs = [r for r in mine if r["source"] == source]
        best = max(rs, key=lambda r: -math.inf if math.isnan(r["attack_auc"]) else r["attack_auc"])
        n = int(sum(r["explained"] for r in rs))
        cross = " (cross-fitted)" if best["blind_crossfit"] == 1 else ""
        body.append([source, f"{_f(best['blind_auc'])} [{_f(best['blind_auc_lo'])}, {_f(best['blind_auc_hi'])}]{cross}",
                     _f(best["propensity_auc"]), best["attack"], _f(best["attack_auc"]),
                     f"{best['diff']:+.3f} [{best['diff_lo']:+.3f}, {best['diff_hi']:+.3f}]",
                     f"{n}/{len(rs)} attacks" + (" (all)" if n == len(rs) else "")])
    return header, body


def blind_summary(rows: list[dict], cfg) -> list[str]:
    """summary.md's section (nothing when the study has no blind baseline rows)."""
    recs = records(rows)
    if not recs:
        return []
    out = ["## Memorised or different? The blind baseline per source", "",
           "A blind classifier (logistic regression on pixels) that never queries the target tells member-"
           "distribution images (reserve, no model trained on them) from each source's images (drawn apart from "
           "the evaluated ones); scored on the target's members vs the source, its AUROC is what distribution "
           "difference alone buys. Intervals: DeLong, "
           f"{cfg.metrics.confidence:.0%}; attack - blind is paired on the same points. An attack's leakage is "
           "*explained by difference alone* when the interval of attack - blind reaches 0. Propensity AUC: the "
           "zero-run propensity of the causal memorisation analysis (shadow features) on the same points. Every "
           "attack: `blind_baseline.csv`; docs/memorised-or-different.md.", ""]
    for model in ordered(recs, "model"):
        for setting in ordered(recs, "setting"):
            for seed in sorted({r["seed"] for r in recs}):
                header, body = source_table(recs, model, setting, seed)
                if not body:
                    continue
                mine = [r for r in recs if (r["model"], r["setting"], r["seed"]) == (model, setting, seed)]
                explained = [s for s in ordered(mine, "source")
                             if all(r["explained"] for r in mine if r["source"] == s)]
                out += [f"### {model} / {setting} / seed {seed}", "", markdown_table(header, body), "",
                        "Sources whose every attack's leakage is explained by difference alone: "
                        + (", ".join(explained) if explained else "none") + ".", ""]
    return out
