"""The defense report of a study with defense settings (issue 13): utility rows, the defense x
source FPR table (Markdown in summary.md, ``defense_fpr.csv``), and which defenses also cut false
positives on OOD / GAN inputs and which only cut true positives. Pure functions of the result rows.

For every (model, defense setting, attack, non-member source): the FPR at the attack's fitted
threshold (single-model attacks and LiRA / RMIA alike) and the members' TPR (against the ``test``
source's member set), each with its change against the baseline setting. A setting's effect on an
attack is summarised from the changes (``EFFECT`` = 0.05):

- ``cuts OOD/GAN FPs``: the mean FPR change over the OOD and GAN sources (every source but
  ``test``) is <= -EFFECT;
- ``cuts TPs only``: TPR falls by >= EFFECT while the OOD/GAN FPRs do not (mean change > -EFFECT);
- ``raises FPs``: the mean OOD/GAN FPR change is >= +EFFECT;
- ``no clear change`` otherwise.
"""
from __future__ import annotations

import math
from pathlib import Path

from .intervals import t_interval
from .tables import Table, markdown_table, ordered, write_csv

EFFECT = 0.05
BASELINE = "baseline"
TEST = "test"
UTILITY = (("train acc", "train", "accuracy"), ("test acc", "test", "accuracy"), ("ECE", "test", "ece"),
           ("train s", "train", "train_seconds"), ("train CPU s", "train", "train_cpu_seconds"))
DEFENSE_ROWS = (("DP acc cost vs GroupNorm", "dp_accuracy_cost_vs_groupnorm"), ("epoch chosen", "early_stopping_epoch"),
                ("MemGuard L1", "mean_l1_distortion"), ("noisy released", "released_noisy_fraction"))
"""the defense rows of the utility table besides DP-SGD's epsilon, which is printed with its delta
(:func:`epsilon_text`)"""
CSV_FIELDS = ["model", "setting", "defense", "attacker", "attack", "source", "tpr", "tpr_baseline", "tpr_change",
              "fpr", "fpr_baseline", "fpr_change", "auroc", "auroc_baseline", "effect"]


def is_defense_study(rows: list[dict]) -> bool:
    """True when some setting of the rows has a defense (the ``defense`` column is not ``none``)."""
    return any(r.get("defense") not in (None, "none") for r in rows)


def baseline_setting(rows: list[dict]) -> str | None:
    """The setting named ``baseline``, else the first setting without a defense (None: none)."""
    settings = ordered(rows, "setting")
    if BASELINE in settings:
        return BASELINE
    return next((r["setting"] for r in rows if r.get("defense") in (None, "none")), None)


def setting_info(rows: list[dict]) -> dict[str, dict]:
    """setting -> {'defense', 'attacker'} from the rows' parameter columns."""
    out = {}
    for r in rows:
        out.setdefault(r["setting"], {"defense": r.get("defense") or "none", "attacker": r.get("attacker") or "same"})
    return out


def _one(t: Table, *key) -> float:
    vals = [v for v in t.get(*key) if not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def attack_sources(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(attacks, non-member sources) of the rows, in order (``shadow`` is not a source)."""
    attack_rows = [r for r in rows if r["attack"] != "-"]
    return (ordered(attack_rows, "attack"),
            [s for s in ordered(attack_rows, "source") if s not in ("shadow", "defense")])


def effect(tpr_change: float, ood_changes: list[float]) -> str:
    """The summary label of a setting's changes against the baseline (module docstring)."""
    ood = [c for c in ood_changes if not math.isnan(c)]
    mean = sum(ood) / len(ood) if ood else float("nan")
    if not math.isnan(mean) and mean <= -EFFECT:
        return "cuts OOD/GAN FPs"
    if not math.isnan(tpr_change) and tpr_change <= -EFFECT:
        return "cuts TPs only"
    if not math.isnan(mean) and mean >= EFFECT:
        return "raises FPs"
    return "no clear change"


def fpr_records(rows: list[dict]) -> list[dict]:
    """One record per (model, setting, attack, source): TPR, FPR, AUROC, with the baseline's and the
    change (mean over seeds); ``effect`` per (model, setting, attack), repeated on its records."""
    t = Table(rows)
    base = baseline_setting(rows)
    info = setting_info(rows)
    attacks, sources = attack_sources(rows)
    ref = TEST if TEST in sources else (sources[0] if sources else None)
    out = []
    for model in ordered(rows, "model"):
        for setting in ordered(rows, "setting"):
            for attack in attacks:
                recs = []
                tpr = _one(t, model, setting, attack, ref, "tpr")
                tpr_b = _one(t, model, base, attack, ref, "tpr") if base else float("nan")
                for source in sources:
                    fpr = _one(t, model, setting, attack, source, "fpr")
                    fpr_b = _one(t, model, base, attack, source, "fpr") if base else float("nan")
                    recs.append({"model": model, "setting": setting, **info[setting], "attack": attack,
                                 "source": source, "tpr": tpr, "tpr_baseline": tpr_b, "tpr_change": tpr - tpr_b,
                                 "fpr": fpr, "fpr_baseline": fpr_b, "fpr_change": fpr - fpr_b,
                                 "auroc": _one(t, model, setting, attack, source, "auroc"),
                                 "auroc_baseline": _one(t, model, base, attack, source, "auroc") if base
                                 else float("nan")})
                label = effect(tpr - tpr_b, [r["fpr_change"] for r in recs if r["source"] != TEST])
                out += [r | {"effect": label} for r in recs]
    return out


def write_fpr_csv(records: list[dict], path: Path) -> Path:
    return write_csv(records, path, CSV_FIELDS, extrasaction="ignore")


def epsilon_text(rows_or_table, model: str, setting: str, short: bool = False) -> str:
    """DP-SGD's privacy of a setting, never an epsilon without its delta (issue 21): 'epsilon 1.00 at
    delta 1e-05 (2.31 at delta = 1/n)' (``short``: 'eps 1.00, delta 1e-05'), mean over seeds; '' for a
    setting without DP-SGD rows."""
    t = rows_or_table if isinstance(rows_or_table, Table) else Table(rows_or_table)
    eps, delta = (_one(t, model, setting, "-", "defense", m) for m in ("epsilon", "delta"))
    if math.isnan(eps):
        return ""
    if short:
        return f"eps {eps:.3g}, delta {delta:.0e}"
    text = f"epsilon {eps:.3g} at delta {delta:.0e}"
    at_1n = _one(t, model, setting, "-", "defense", "epsilon_delta_1_over_n")
    return text if math.isnan(at_1n) else f"{text} ({at_1n:.3g} at delta = 1/n)"


def setting_label(rows_or_table, model: str, setting: str) -> str:
    """The setting's name, with its epsilon and delta for a DP-SGD setting (figure labels, verdicts)."""
    dp = epsilon_text(rows_or_table, model, setting, short=True)
    return f"{setting} ({dp})" if dp else setting


def _f(x: float, signed: bool = False) -> str:
    return "–" if x is None or math.isnan(x) else (f"{x:+.3f}" if signed else f"{x:.3f}")


def utility_markdown(rows: list[dict], model: str) -> list[str]:
    """Per setting: train / test accuracy, ECE, training time (s) and the defense's own rows."""
    t = Table(rows)
    info = setting_info(rows)
    header = ["setting", "defense", "attacker"] + [u[0] for u in UTILITY] + ["DP-SGD privacy"] + [d[0] for d in DEFENSE_ROWS]
    body = []
    for setting in ordered(rows, "setting"):
        cells = [setting, info[setting]["defense"], info[setting]["attacker"]]
        cells += [t.fmt(model, setting, "-", src, m, digits=1 if m.startswith("train_") else 3) for _, src, m in UTILITY]
        cells += [epsilon_text(t, model, setting) or "–"]
        cells += [t.fmt(model, setting, "-", "defense", m) for _, m in DEFENSE_ROWS]
        body.append(cells)
    note = ("Utility per setting (train s / train CPU s: wall / process CPU seconds of the target's training, "
            "stored with the model; – for a model stored before overconf recorded it). Defense rows: the epsilon "
            "DP-SGD reached at its delta (and at delta = 1/n, seed 003's convention, for comparison only); DP-SGD's "
            "test-accuracy cost against the same GroupNorm model trained without DP (BatchNorm architectures); "
            "the epoch early stopping chose, MemGuard's mean L1 distortion and fraction of noisy releases.")
    return [note, "", markdown_table(header, body), ""]


def seed_interval_text(values: list[float], rate: bool = True) -> str:
    """'mean [lo, hi]' of :func:`overconf.report.intervals.t_interval` over seeds (cut to [0, 1] for
    rates); the mean alone with one seed."""
    iv = t_interval(values, limits=(0.0, 1.0) if rate else None)
    if iv.n == 0:
        return "–"
    return f"{iv.mean:.3f}" if iv.n < 2 else f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


LEAKAGE = (("test acc", "-", "accuracy"), ("loss AUROC", "loss", "auroc"), ("LiRA TPR@1%FPR", "lira_online", "tpr_at_fpr_0.01"),
           ("RMIA TPR@1%FPR", "rmia_online", "tpr_at_fpr_0.01"), ("RMIA AUROC", "rmia_online", "auroc"))
"""the per-setting leakage table: (column, attack, metric), against the ``test`` source"""


def leakage_markdown(rows: list[dict], model: str) -> list[str]:
    """Per setting: test accuracy and the main attacks' leakage against ``test``, mean and 95% Student-t
    interval over the seeds (the seed-level view the verdicts decide on)."""
    t = Table(rows)
    cols = [c for c in LEAKAGE if any(t.get(model, s, c[1], TEST, c[2]) for s in ordered(rows, "setting"))]
    if len(cols) < 2:
        return []
    seeds = sorted({r["seed"] for r in rows if r["model"] == model})
    body = [[setting_label(t, model, s)] + [seed_interval_text(t.get(model, s, a, TEST, m)) for _, a, m in cols]
            for s in ordered(rows, "setting")]
    return [f"Leakage per setting against the `{TEST}` source, mean and 95% Student-t interval over "
            f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}; rates cut to [0, 1]; one seed: the value):", "",
            markdown_table(["setting"] + [c[0] for c in cols], body), ""]


def fpr_markdown(records: list[dict], model: str) -> list[str]:
    """One table per attack: rows = settings, columns = TPR and FPR per source, each 'value (change)'."""
    recs = [r for r in records if r["model"] == model]
    if not recs:
        return []
    sources = list(dict.fromkeys(r["source"] for r in recs))
    out = [f"Defense x source: members' TPR and the FPR per non-member source at each attack's fitted "
           f"threshold, value (change against the baseline); effect: `cuts OOD/GAN FPs` when the mean FPR "
           f"change over the non-`test` sources is <= -{EFFECT:g}, `cuts TPs only` when TPR falls by >= "
           f"{EFFECT:g} and those FPRs do not, `raises FPs` when they rise by >= {EFFECT:g} "
           f"(all records: defense_fpr.csv).", ""]
    for attack in dict.fromkeys(r["attack"] for r in recs):
        body = []
        for setting in dict.fromkeys(r["setting"] for r in recs):
            rs = {r["source"]: r for r in recs if r["attack"] == attack and r["setting"] == setting}
            any_r = next(iter(rs.values()))
            body.append([setting, f"{_f(any_r['tpr'])} ({_f(any_r['tpr_change'], True)})"]
                        + [f"{_f(rs[s]['fpr'])} ({_f(rs[s]['fpr_change'], True)})" if s in rs else "–"
                           for s in sources] + [any_r["effect"]])
        out += [f"`{attack}`:", "", markdown_table(["setting", "TPR"] + [f"FPR {s}" for s in sources] + ["effect"],
                                                   body), ""]
    return out


def effect_summary(records: list[dict], model: str) -> list[str]:
    """Which settings cut the OOD/GAN false positives and which only the true positives, per attack."""
    recs = [r for r in records if r["model"] == model]
    by: dict[str, dict[str, list[str]]] = {}
    for r in recs:
        by.setdefault(r["effect"], {}).setdefault(r["setting"], [])
        if r["attack"] not in by[r["effect"]][r["setting"]]:
            by[r["effect"]][r["setting"]].append(r["attack"])
    out = []
    for label in ("cuts OOD/GAN FPs", "cuts TPs only", "raises FPs"):
        items = by.get(label, {})
        text = "; ".join(f"{s} ({', '.join(a)})" for s, a in items.items()) or "none"
        out.append(f"- **{label}**: {text}")
    return out + [""]


def defense_section(rows: list[dict], level: int = 2) -> tuple[str, list[dict]]:
    """summary.md's defense section and the FPR-table records (empty without defense settings)."""
    if not is_defense_study(rows):
        return "", []
    records = fpr_records(rows)
    out = ["#" * level + " Defenses: utility, false positives per source", ""]
    base = baseline_setting(rows)
    out += [f"Baseline: `{base}`. Attacker per setting in the `attacker` column (same / aware: shadow and "
            f"reference models defended like the target; unaware: undefended).", ""]
    for model in ordered(rows, "model"):
        out += ["#" * (level + 1) + f" {model}", ""]
        out += (utility_markdown(rows, model) + leakage_markdown(rows, model) + effect_summary(records, model)
                + fpr_markdown(records, model))
    return "\n".join(out), records
