"""Paper-style figures (Hintersdorf et al. 2022): FPR bars per source and max-score histograms;
log-log ROC curves per attack (Carlini et al. 2022) with bootstrap intervals at low FPR."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..metrics.membership import roc
from .artifacts import cached_png, plt
from .tables import Table, ordered


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


REFERENCE_ATTACKS = ("max_score", "entropy", "salem_top3")
"""the reference study's three attacks (Hintersdorf et al. 2022), drawn first"""
FAMILIES = (  # (family, label prefixes), in drawing order after the reference study's attacks
    ("threshold", ("max_score", "entropy", "loss", "true_class", "modified_entropy", "scaled_logit")),
    ("ML-Leaks", ("salem",)),
    ("label-only", ("gap", "label_only")),
    ("white-box", ("adversarial", "local_variation")),
    ("reference models", ("lira", "rmia", "shokri")),
)
FAMILY_COLORS = {"reference study": "Blues", "threshold": "Oranges", "ML-Leaks": "Greens", "label-only": "Purples",
                 "white-box": "Reds", "reference models": "Greys", "other": "pink"}


def attack_family(label: str) -> str:
    """The family of an attack label: 'reference study' (max_score, entropy, salem / salem_top3),
    then by prefix 'threshold', 'ML-Leaks', 'label-only', 'white-box', 'reference models', else 'other'."""
    if label in REFERENCE_ATTACKS or label == "salem":
        return "reference study"
    for family, prefixes in FAMILIES:
        if label.startswith(prefixes):
            return family
    return "other"


def group_attacks(attacks: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Attacks ordered for the FPR bars and their groups: the reference study's three first
    (max_score, entropy, salem), then threshold attacks, ML-Leaks, label-only, white-box and
    reference-model attacks, then any other; the given order within a group."""
    ref_rank = {a: i for i, a in enumerate(REFERENCE_ATTACKS + ("salem",))}
    names = ["reference study"] + [f for f, _ in FAMILIES] + ["other"]
    groups: dict[str, list[str]] = {n: [] for n in names}
    for a in dict.fromkeys(attacks):
        groups[attack_family(a)].append(a)
    groups["reference study"].sort(key=ref_rank.__getitem__)
    out = [(n, g) for n, g in groups.items() if g]
    return [a for _, g in out for a in g], out


GROUP_GAP = 1.0
"""empty bar slots between two attack families"""


def fpr_bars(ax, table: Table, model: str, setting: str, attacks: list[str], sources: list[str]) -> None:
    """One cluster per source, one bar per attack with the bootstrap FPR interval; the first
    cluster is the TPR on target members. Within a cluster the attacks are grouped by family
    (``group_attacks``) with a gap between families, one colour scale per family; the legend,
    by family, sits outside the axes on the right."""
    order, groups = group_attacks(attacks)
    clusters = ["members (TPR)"] + sources
    offsets, colors, pos = {}, {}, 0.0
    for gi, (family, members) in enumerate(groups):
        cmap = plt.get_cmap(FAMILY_COLORS[family])
        for j, a in enumerate(members):
            offsets[a] = pos
            colors[a] = cmap(0.85 - 0.5 * j / max(1, len(members) - 1)) if len(members) > 1 else cmap(0.7)
            pos += 1.0
        pos += GROUP_GAP if gi < len(groups) - 1 else 0.0
    span = pos  # slots used by one cluster
    step = span + 2.0  # clusters are separated by two empty slots
    unit = 1.0 / step
    centers = np.arange(len(clusters))
    ref = "test" if "test" in sources else sources[0]
    handles = {}
    for a in order:
        vals, lo, hi = [], [], []
        tpr = table.get(model, setting, a, ref, "tpr")
        vals.append(np.mean(tpr) if tpr else np.nan)
        lo.append(0.0)
        hi.append(0.0)
        for s in sources:
            v = table.get(model, setting, a, s, "fpr")
            m = np.mean(v) if v else np.nan
            vals.append(m)
            lo.append(max(0.0, m - np.mean(table.get(model, setting, a, s, "fpr_ci_low") or [m])))
            hi.append(max(0.0, np.mean(table.get(model, setting, a, s, "fpr_ci_high") or [m]) - m))
        x = centers + (offsets[a] + 0.5 - span / 2) * unit
        handles[a] = ax.bar(x, vals, unit, yerr=[lo, hi], capsize=1, color=colors[a], label=a,
                            error_kw={"elinewidth": 0.6, "ecolor": "0.25"})
    for c in centers[1:]:
        ax.axvline(c - 0.5, color="0.85", lw=0.6, zorder=0)
    ax.set_xticks(centers, clusters, rotation=30, ha="right")
    ax.set_xlim(-0.5, len(clusters) - 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate flagged as member")
    ax.set_title(f"{model} / {setting}")
    ax.grid(True, axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    blank = Patch(visible=False)
    legend_handles, legend_labels, headers = [], [], []
    for family, members in groups:
        headers.append(len(legend_labels))
        legend_handles.append(blank)
        legend_labels.append(family)
        legend_handles += [handles[a] for a in members]
        legend_labels += members
    legend = ax.legend(legend_handles, legend_labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       borderaxespad=0.0, frameon=False)
    for i in headers:
        legend.get_texts()[i].set_fontweight("bold")


def fpr_bars_figure(table: Table, model: str, setting: str, attacks: list[str], sources: list[str]):
    """The FPR bar figure of one (model, setting), sized by the number of bars."""
    order, groups = group_attacks(attacks)
    slots = len(order) + GROUP_GAP * (len(groups) - 1) + 2.0
    width = max(6.0, 1.0 + 0.075 * slots * (len(sources) + 1)) + 2.6
    height = max(4.4, 0.8 + 0.17 * (len(order) + len(groups)))  # room for the one-column legend
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    fpr_bars(ax, table, model, setting, attacks, sources)
    return fig


def max_score_histograms(fig, cell) -> None:
    """Histograms of max_k p_k: members vs each non-member source (log-scaled counts)."""
    sets = {"members": cell.members.max_score} | {k: v.max_score for k, v in cell.sources.items()}
    n = len(sets)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    bins = np.linspace(0, 1, 41)
    for i, (name, scores) in enumerate(sets.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.hist(scores.double().numpy(), bins=bins, color="C0" if name == "members" else "C3", log=True)
        ax.set_title(f"{name} (mean {float(scores.mean()):.3f})", fontsize="small")
        ax.set_xlim(0, 1)
    fig.suptitle(f"max prediction score: {cell.model} / {cell.setting} / seed {cell.seed}")
    fig.supxlabel("max_k p_k")


def roc_sources(cell, cfg) -> list[str]:
    """The sources whose log-log ROC is drawn: ``report.roc_sources``, else test (or the first)."""
    chosen = cfg.report.roc_sources
    if chosen is None:
        chosen = ["test"] if "test" in cell.sources else list(cell.sources)[:1]
    return [s for s in chosen if s in cell.sources]


def loglog_roc(ax, cell, source: str, rows: list[dict], auc_in_label: bool = True) -> None:
    """One ROC curve per attack (members vs ``source``) on log-log axes, with the TPR at each FPR
    target and its bootstrap interval from ``rows`` (the cell's result rows)."""
    values = {(r["attack"], r["metric"]): r["value"] for r in rows if r["source"] == source}
    colors = plt.get_cmap("tab20").colors
    lowest = 1.0
    for i, (attack, scores) in enumerate(cell.scores.items()):
        if source not in scores:
            continue
        fpr, tpr, _ = roc(scores["members"], scores[source])
        lowest = min(lowest, 1 / max(1, len(scores[source])), 1 / max(1, len(scores["members"])))
        color = colors[i % len(colors)]
        auc = values.get((attack, "auroc"), float("nan"))
        ax.step(fpr, tpr, where="post", color=color, lw=1.2, ls=("-", "--", ":")[i // len(colors) % 3],
                label=f"{attack} (AUC {auc:.3f})" if auc_in_label else attack)
        for key in [m for (a, m) in values if a == attack and m.startswith("tpr_at_fpr_") and m.endswith("_ci_low")]:
            target = float(key[len("tpr_at_fpr_"): -len("_ci_low")])
            v = values.get((attack, f"tpr_at_fpr_{target:g}"))
            lo, hi = values[(attack, key)], values.get((attack, f"tpr_at_fpr_{target:g}_ci_high"))
            if v is None or hi is None or v <= 0:
                continue
            ax.errorbar([target], [v], yerr=[[max(0.0, v - lo)], [max(0.0, hi - v)]], fmt="o", ms=3,
                        color=color, capsize=2)
    ax.plot([lowest / 2, 1], [lowest / 2, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lowest / 2, 1)
    ax.set_ylim(lowest / 2, 1.05)
    ax.set_xlabel(f"FPR ({source})")
    ax.set_ylabel("TPR (target members)")
    ax.set_title(f"{cell.model} / {cell.setting} / seed {cell.seed}: members vs {source}", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)


def roc_figure(cell, rows: list[dict], sources: list[str]):
    """A figure with one log-log ROC panel per source (``rows``: the cell's result rows); the
    legend gives each attack's AUROC where there is a single panel."""
    fig, axes = plt.subplots(1, len(sources), figsize=(5 * len(sources) + 2.8, 5), squeeze=False,
                             layout="constrained")
    for ax, source in zip(axes[0], sources):
        loglog_roc(ax, cell, source, rows, auc_in_label=len(sources) == 1)
    axes[0][-1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def cell_rows(result, cell) -> list[dict]:
    return [r for r in result.rows if (r["model"], r["setting"], r["seed"]) == (cell.model, cell.setting, cell.seed)]


def pairs(d: dict) -> list:
    """A dict as [key, value] pairs: content keys sort dict keys, figures depend on their order."""
    return [[k, pairs(v) if isinstance(v, dict) else v] for k, v in d.items()]


def study_figures(result, folder: Path, cache=None) -> list[Path]:
    """The run's figures; each one is drawn only when ``cache`` (a :class:`~overconf.core.cache.Cache`)
    holds no PNG of the same content drawn by the same code (``report/artifacts.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = Table(result.rows)
    rows = result.rows
    attacks = ordered(rows, "attack", exclude=("-",))
    sources = [s for s in ordered([r for r in rows if r["attack"] != "-"], "source") if s != "shadow"]
    written = []
    if attacks and sources:
        for model in ordered(rows, "model"):
            for setting in ordered(rows, "setting"):
                def draw(model=model, setting=setting):
                    return fpr_bars_figure(table, model, setting, attacks, sources)

                shown = [r for r in rows if r["model"] == model and r["setting"] == setting]
                path = folder / f"fpr_bars_{slug(model)}_{slug(setting)}.png"
                written.append(cached_png(cache, path, {"model": model, "setting": setting, "attacks": attacks,
                                                        "sources": sources, "rows": shown}, draw, dpi=120))
    for cell in result.cells:
        def draw_histograms(cell=cell):
            n = 1 + len(cell.sources)
            fig = plt.figure(figsize=(3.2 * min(4, n), 2.6 * int(np.ceil(n / 4)) + 0.6))
            max_score_histograms(fig, cell)
            fig.tight_layout()
            return fig

        sets = [["members", cell.members.max_score]] + [[k, v.max_score] for k, v in cell.sources.items()]
        labels = {"model": cell.model, "setting": cell.setting, "seed": cell.seed}
        path = folder / f"max_score_{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}.png"
        written.append(cached_png(cache, path, labels | {"sets": sets}, draw_histograms, dpi=110))
        sources = roc_sources(cell, result.config)
        if cell.scores and sources:
            shown = cell_rows(result, cell)

            def draw_roc(cell=cell, shown=shown, sources=sources):
                return roc_figure(cell, shown, sources)

            path = folder / f"roc_{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}.png"
            content = labels | {"scores": pairs(cell.scores), "rows": shown, "sources": sources}
            written.append(cached_png(cache, path, content, draw_roc, dpi=120))
    return written
