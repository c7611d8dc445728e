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


def fpr_bars(ax, table: Table, model: str, setting: str, attacks: list[str], sources: list[str]) -> None:
    """Grouped bars: one group per source, one bar per attack, with the bootstrap FPR interval;
    the first group is the TPR on target members."""
    groups = ["members (TPR)"] + sources
    width = 0.8 / max(1, len(attacks))
    x = np.arange(len(groups))
    for i, a in enumerate(attacks):
        vals, lo, hi = [], [], []
        ref = "test" if "test" in sources else sources[0]
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
        ax.bar(x + (i - (len(attacks) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=2, label=a)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate flagged as member")
    ax.set_title(f"{model} / {setting}")
    ax.legend(fontsize="small")


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
    """The run's figures; each one is drawn only when ``cache`` (a :class:`~overconf.cache.Cache`)
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
                    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * (len(sources) + 1), 4))
                    fpr_bars(ax, table, model, setting, attacks, sources)
                    fig.tight_layout()
                    return fig

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
