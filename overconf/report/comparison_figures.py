"""Figures comparing settings (Hintersdorf et al. 2022, Figs. 4-5 style), one file per model:

- ``tradeoff_<model>.png``: mean OOD FPR (and fake FPR) against AUROC and against TPR at 1% FPR,
  one point per setting, the points of a sweep linked in order of the swept value;
- ``fpr_vs_baseline_<model>.png``: FPR per source (and TPR) per setting, the baseline overlaid;
- ``max_score_density_<model>.png``: max-score densities of members and each source per setting,
  with the Wasserstein-1 distance of each source to the members;
- ``reliability_<model>.png``: reliability diagram per setting on the test source.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..metrics.calibration import expected_calibration_error, reliability
from .artifacts import cached_file, plt
from .comparison import Comparison, Entry
from .figures import pairs, slug


def _grid(n: int, w: float = 3.4, h: float = 2.8):
    cols = min(4, max(1, n))
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)


def _group(e: Entry) -> str:
    return e.info.sweep or e.info.kind


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def tradeoff(c: Comparison, entries: list[Entry], path: Path, written: list[Path]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    groups = list(dict.fromkeys(_group(e) for e in entries if e.setting != c.baseline))
    colors = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    for ax, (xkey, xlabel) in zip(axes, (("auroc", "AUROC (test)"), ("tpr_at_1pct_fpr", "TPR at 1% FPR (test)"))):
        for (run, g) in dict.fromkeys((e.run, _group(e)) for e in entries if e.setting != c.baseline):
            members = [e for e in entries if e.run == run and _group(e) == g]
            swept = sorted((e for e in members if e.info.sweep and _numeric(e.info.sweep_value)),
                           key=lambda e: e.info.sweep_value)
            if len(swept) > 1:
                ax.plot([e.values[xkey] for e in swept], [e.values["mean_ood_fpr"] for e in swept], "-",
                        color=colors[g], alpha=0.6, lw=1.2)
                if c.fake_sources:
                    ax.plot([e.values[xkey] for e in swept], [e.values["fake_fpr"] for e in swept], ":",
                            color=colors[g], alpha=0.6, lw=1.0)
        for e in entries:
            base = e.setting == c.baseline
            color = "black" if base else colors[_group(e)]
            x = e.values[xkey]
            ax.scatter([x], [e.values["mean_ood_fpr"]], marker="*" if base else "o", s=110 if base else 36,
                       color=color, zorder=3)
            if c.fake_sources:
                ax.scatter([x], [e.values["fake_fpr"]], marker="^", s=40, facecolors="none", edgecolors=color,
                           zorder=3)
            ax.annotate(c.label(e), (x, e.values["mean_ood_fpr"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean OOD FPR (o)" + (", fake FPR (^)" if c.fake_sources else ""))
    handles = [plt.Line2D([], [], color=colors[g], marker="o", ls="-", label=g) for g in groups]
    if c.baseline:
        handles.append(plt.Line2D([], [], color="black", marker="*", ls="", markersize=10, label=c.baseline))
    fig.suptitle(f"overconfidence / leakage trade-off: {entries[0].model} ({c.attack})")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles=handles, fontsize="small", loc="lower center", ncol=min(len(handles), 6), frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)


def fpr_vs_baseline(c: Comparison, entries: list[Entry], path: Path, written: list[Path]) -> None:
    base = next((e for e in entries if e.setting == c.baseline), None)
    shown = [e for e in entries if e is not base] or entries
    groups = ["members (TPR)"] + c.sources
    x = np.arange(len(groups))

    def vals(e: Entry) -> list[float]:
        return [e.values["tpr"]] + [e.values.get(f"fpr:{s}", float("nan")) for s in c.sources]

    fig, axes = _grid(len(shown), w=0.5 * len(groups) + 1.6, h=3.0)
    for ax, e in zip(axes, shown):
        ax.bar(x, vals(e), 0.7, color=["C2"] + ["C3"] * len(c.sources), label=c.label(e))
        if base is not None:
            ax.bar(x, vals(base), 0.7, fill=False, edgecolor="black", lw=1.0, ls="--", label=f"{c.baseline}")
        ax.set_xticks(x, groups, rotation=40, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(c.label(e), fontsize=9)
        ax.legend(fontsize=6, loc="upper center", framealpha=0.6)
    axes[0].set_ylabel("rate flagged as member")
    fig.suptitle(f"FPR per source vs baseline: {entries[0].model} ({c.attack})")
    _save(fig, path, written)


def max_score_density(c: Comparison, entries: list[Entry], path: Path, written: list[Path]) -> None:
    fig, axes = _grid(len(entries), w=3.8, h=3.0)
    bins = np.linspace(0, 1, 51)
    for ax, e in zip(axes, entries):
        ms = e.samples["max_score"]
        for i, (name, scores) in enumerate(ms.items()):
            if not len(scores):
                continue
            w = e.values.get(f"wasserstein:{name}")
            label = name if name == "members" else f"{name} (W1 {w:.3f})"
            ax.hist(scores.numpy().clip(0, 1), bins=bins, density=True, histtype="step", log=True,
                    lw=1.6 if name == "members" else 1.0, color="black" if name == "members" else f"C{i % 10}",
                    label=label)
        ax.set_title(c.label(e), fontsize=9)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=5, loc="upper left")
    fig.supxlabel("max_k p_k")
    fig.supylabel("density (log)")
    fig.suptitle(f"max-score density per source: {entries[0].model}")
    _save(fig, path, written)


def reliability_diagrams(c: Comparison, entries: list[Entry], path: Path, written: list[Path]) -> None:
    fig, axes = _grid(len(entries), w=3.0, h=3.0)
    n_bins = 15
    centers = (np.arange(n_bins + 1) + 0.5) / n_bins
    for ax, e in zip(axes, entries):
        probs, labels = e.samples["test_probs"], e.samples["test_labels"]
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        if probs is not None and len(probs):
            weight, conf, acc = (t.numpy() for t in reliability(probs, labels, n_bins))
            nz = weight > 0
            x = centers[nz].clip(max=1)
            ax.bar(x, acc[nz], width=1 / n_bins, color="C0", edgecolor="white", label="accuracy")
            ax.bar(x, np.abs(conf[nz] - acc[nz]), bottom=np.minimum(conf[nz], acc[nz]), width=1 / n_bins,
                   fill=False, hatch="///", edgecolor="C3", lw=0.5, label="|confidence - accuracy|")
            ece = expected_calibration_error(probs, labels, n_bins)
            ax.set_title(f"{c.label(e)}\nECE {ece:.3f}", fontsize=8)
        else:
            ax.set_title(f"{c.label(e)}\n(no test source)", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=6, loc="upper left")
    fig.supxlabel("confidence")
    fig.supylabel("accuracy")
    fig.suptitle(f"reliability on the test source: {entries[0].model}")
    _save(fig, path, written)


def shown_content(c: Comparison, entries: list[Entry]):
    """What a model's comparison figures show: the comparison's options and its entries (run
    names only where labels show them, i.e. across runs), in their order."""
    return {"attack": c.attack, "sources": c.sources, "baseline": c.baseline, "multi_run": c.multi_run,
            "entries": [[e.run if c.multi_run else "", e.model, e.info, pairs(e.values), pairs(e.samples)]
                        for e in entries]}


def comparison_figures(c: Comparison, folder: Path, cache=None) -> list[Path]:
    """The comparison figures per model; each one is drawn only when ``cache`` holds no file of
    the same content drawn by the same code (``report/artifacts.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for model in c.models():
        entries = [e for e in c.entries if e.model == model]
        m = slug(model)
        content = shown_content(c, entries)
        for name, draw in (("tradeoff", tradeoff), ("fpr_vs_baseline", fpr_vs_baseline),
                           ("max_score_density", max_score_density), ("reliability", reliability_diagrams)):
            written.append(cached_file(cache, folder / f"{name}_{m}.png", content,
                                       lambda path, draw=draw: draw(c, entries, path, [])))
    return written
