"""Paper-style figures (Hintersdorf et al. 2022): FPR bars per source and max-score histograms."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .tables import Table, ordered  # noqa: E402


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


def study_figures(result, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = Table(result.rows)
    rows = result.rows
    attacks = ordered(rows, "attack", exclude=("-",))
    sources = [s for s in ordered([r for r in rows if r["attack"] != "-"], "source") if s != "shadow"]
    written = []
    if attacks and sources:
        for model in ordered(rows, "model"):
            for setting in ordered(rows, "setting"):
                fig, ax = plt.subplots(figsize=(1.2 + 0.9 * (len(sources) + 1), 4))
                fpr_bars(ax, table, model, setting, attacks, sources)
                fig.tight_layout()
                path = folder / f"fpr_bars_{slug(model)}_{slug(setting)}.png"
                fig.savefig(path, dpi=120)
                plt.close(fig)
                written.append(path)
    for cell in result.cells:
        n = 1 + len(cell.sources)
        fig = plt.figure(figsize=(3.2 * min(4, n), 2.6 * int(np.ceil(n / 4)) + 0.6))
        max_score_histograms(fig, cell)
        fig.tight_layout()
        path = folder / f"max_score_{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
