"""Figures of the defense report (issue 13), pure functions of the result rows:

- ``privacy_utility_<metric>_<model>.png``: the target's test accuracy against the attack's
  AUROC (``auroc``) or TPR at 1% FPR (``tpr_at_fpr_0.01``), members vs the ``test`` source; one
  panel per attack, one labelled point per setting, the baseline starred (Jia et al. 2019, Fig. 4
  style privacy-utility plane: down-left is private but useless, up-right useful but leaky);
- ``defense_fpr_<model>.png``: heatmaps of the change against the baseline of members' TPR and of
  the FPR per non-member source, one panel per attack (rows: settings).

Written next to the other figures (content-keyed PNG reuse, ``report/artifacts.py``) and into
TensorBoard (run ``tensorboard/defenses``, images ``defenses/<figure>``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .artifacts import cached_png, plt
from .defense_report import TEST, attack_sources, baseline_setting, setting_label
from .figures import slug
from .tables import Table, ordered

METRICS = {"auroc": "attack AUROC (members vs test)", "tpr_at_fpr_0.01": "TPR at 1% FPR (members vs test)"}


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def privacy_utility_points(rows: list[dict], model: str, attack: str, metric: str) -> list[tuple[str, float, float]]:
    """(setting, attack metric against ``test``, target test accuracy) per setting, mean over seeds."""
    t = Table(rows)
    out = []
    for setting in ordered(rows, "setting"):
        x = _mean(t.get(model, setting, attack, TEST, metric))
        y = _mean(t.get(model, setting, "-", "test", "accuracy"))
        if not (math.isnan(x) or math.isnan(y)):
            out.append((setting, x, y))
    return out


def _grid(n: int, width: float, height: float):
    cols = min(4, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def privacy_utility_figure(rows: list[dict], model: str, metric: str):
    attacks, _ = attack_sources(rows)
    base = baseline_setting(rows)
    attacks = [a for a in attacks if privacy_utility_points(rows, model, a, metric)]
    fig, axes = _grid(max(1, len(attacks)), 4.2, 3.6)
    for ax, attack in zip(axes, attacks):
        for setting, x, y in privacy_utility_points(rows, model, attack, metric):
            star = setting == base
            ax.scatter([x], [y], marker="*" if star else "o", s=140 if star else 30,
                       color="crimson" if star else "tab:blue", zorder=3)
            ax.annotate(setting_label(rows, model, setting), (x, y), fontsize=6.5, xytext=(3, 3),
                        textcoords="offset points")
        if metric == "auroc":
            ax.axvline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(attack, fontsize=9)
        ax.set_xlabel(METRICS[metric], fontsize=8)
        ax.set_ylabel("target test accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}: privacy-utility per defense setting (star: {base})", fontsize=10)
    fig.tight_layout()
    return fig


def heatmap_figure(records: list[dict], model: str):
    recs = [r for r in records if r["model"] == model]
    attacks = list(dict.fromkeys(r["attack"] for r in recs))
    settings = list(dict.fromkeys(r["setting"] for r in recs))
    sources = list(dict.fromkeys(r["source"] for r in recs))
    cols = ["TPR"] + [f"FPR {s}" for s in sources]
    fig, axes = _grid(max(1, len(attacks)), 0.75 * len(cols) + 2.2, 0.32 * len(settings) + 1.2)
    im = None
    for k, (ax, attack) in enumerate(zip(axes, attacks)):
        m = np.full((len(settings), len(cols)), np.nan)
        for r in recs:
            if r["attack"] == attack:
                i = settings.index(r["setting"])
                m[i, 0] = r["tpr_change"]
                m[i, 1 + sources.index(r["source"])] = r["fpr_change"]
        im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(m):
            if not np.isnan(v):
                ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(settings)), settings if k % min(4, len(attacks)) == 0 else [], fontsize=7)
        ax.set_title(attack, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="change against the baseline")
    fig.suptitle(f"{model}: TPR and FPR per source, change against the baseline", fontsize=10)
    return fig


def defense_figures(rows: list[dict], records: list[dict], folder: Path, cache=None) -> list[Path]:
    """The privacy-utility figures (AUROC, TPR at 1% FPR) and the heatmap, per model."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ordered(rows, "model"):
        shown = [r for r in rows if r["model"] == model and (r["attack"] != "-" and r["source"] == TEST
                                                             or r["metric"] == "accuracy")]
        for metric in METRICS:
            path = folder / f"privacy_utility_{slug(metric)}_{slug(model)}.png"
            written.append(cached_png(cache, path, {"model": model, "metric": metric, "rows": shown},
                                      lambda model=model, metric=metric: privacy_utility_figure(rows, model, metric),
                                      dpi=120))
        recs = [r for r in records if r["model"] == model]
        if recs:
            path = folder / f"defense_fpr_{slug(model)}.png"
            written.append(cached_png(cache, path, {"model": model, "records": recs},
                                      lambda model=model: heatmap_figure(records, model), dpi=120))
    return written


def defense_tensorboard(paths: list[Path], logdir: Path) -> None:
    """The defense figures as TensorBoard images (run ``defenses``, tag ``defenses/<figure name>``)."""
    import matplotlib.image as mpimg
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for p in paths:
            img = mpimg.imread(str(p))[..., :3]
            writer.add_image(f"defenses/{p.stem}", img, 0, dataformats="HWC")
    finally:
        writer.close()
