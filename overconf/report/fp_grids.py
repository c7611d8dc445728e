"""Figures of the most confident false positives (Hintersdorf et al. 2022, Fig. 1: non-members the
attack calls members): per cell, for the cell's first attack, one panel per non-member source with
the ``report.fp_grid`` flagged inputs of highest score (score >= the fitted threshold), as
TensorBoard's ``confident_false_positives`` images - here as PNGs for summary.md and report.html."""
from __future__ import annotations

from pathlib import Path

import torch

from .artifacts import cached_png, plt
from .figures import slug


def confident_false_positives(cell, images: dict, k: int) -> list[tuple[str, torch.Tensor, int]]:
    """(source, the top-``k`` flagged images as uint8, how many were flagged) per source with one."""
    if not cell.scores:
        return []
    attack = next(iter(cell.scores))
    threshold = cell.thresholds[attack]
    out = []
    for label in cell.sources:
        scores, imgs = cell.scores[attack].get(label), images.get((cell.seed, label))
        if scores is None or imgs is None:
            continue
        flagged = torch.nonzero(scores >= threshold).flatten()
        if len(flagged):
            top = flagged[torch.argsort(scores[flagged], descending=True)[:k]]
            out.append((label, imgs[top], len(flagged)))
    return out


def grid_figure(attack: str, panels: list[tuple[str, torch.Tensor, int]]):
    from torchvision.utils import make_grid

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (label, imgs, flagged) in zip(axes[0], panels):
        grid = make_grid(imgs.float() / 255, nrow=min(4, len(imgs)), padding=1, pad_value=1.0)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(f"{label}\n({flagged} flagged)", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"most confident false positives of {attack}", fontsize=9)
    fig.tight_layout()
    return fig


def fp_grid_figures(result, folder: Path, cache=None) -> list[Path]:
    """One PNG per cell (``fp_grid_<model>_<setting>_s<seed>.png``) with a flagged non-member."""
    k = result.config.report.fp_grid
    written = []
    for cell in result.cells:
        panels = confident_false_positives(cell, result.images, k)
        if not panels or k <= 0:
            continue
        attack = next(iter(cell.scores))
        path = folder / f"fp_grid_{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}.png"
        content = {"model": cell.model, "setting": cell.setting, "seed": cell.seed, "attack": attack,
                   "panels": [[label, imgs, n] for label, imgs, n in panels]}
        written.append(cached_png(cache, path, content, lambda: grid_figure(attack, panels), dpi=110))
    return written
