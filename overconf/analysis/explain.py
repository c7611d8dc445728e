"""Figures of vulnerable points (seed 003): t-SNE of penultimate features (scikit-learn, seeded),
Grad-CAM saliency (the grad-cam package, ``pytorch_grad_cam.GradCAM`` on the last conv layer) and
image grids. Arrays in, matplotlib figures out; the model is run only for Grad-CAM (an explanation,
not a metric)."""
from __future__ import annotations

import numpy as np
import torch

from overconf.core.device import to_device_images


def tsne_embedding(features: torch.Tensor, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """float [n, 2]: scikit-learn's TSNE (PCA init, ``random_state=seed``) of the features."""
    from sklearn.manifold import TSNE

    x = features.double().numpy()
    perplexity = float(min(perplexity, max(1.0, (len(x) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def last_conv_layer(model: torch.nn.Module) -> torch.nn.Module:
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def gradcam_maps(model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """float32 [n, H, W] in [0, 1]: Grad-CAM of class ``classes[i]`` for input ``x[i]`` at the
    model's last Conv2d (Selvaraju et al. 2017, via pytorch_grad_cam). Deterministic."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if len(x) == 0:
        return np.zeros((0, *x.shape[2:]), dtype=np.float32)
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        with GradCAM(model=model, target_layers=[last_conv_layer(model)]) as cam:
            maps = cam(input_tensor=to_device_images(x, torch.device(device)).float(),
                       targets=[ClassifierOutputTarget(int(c)) for c in classes])
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    return np.asarray(maps, dtype=np.float32)


def _show(ax, image: np.ndarray | torch.Tensor) -> None:
    img = image.numpy() if isinstance(image, torch.Tensor) else image
    if img.shape[0] in (1, 3):
        img = img.transpose(1, 2, 0)
    ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 or img.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def tsne_figure(emb: np.ndarray, labels: torch.Tensor, flags: dict[str, torch.Tensor], title: str):
    """Scatter of the embedding coloured by class; each flag set circled (one colour per flag)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=labels.numpy(), cmap="tab10", s=6, alpha=0.7)
    for (name, f), color, size in zip(flags.items(), ("black", "red", "blue"), (60, 110, 160)):
        f = f.bool().numpy()
        ax.scatter(emb[f, 0], emb[f, 1], s=size, facecolors="none", edgecolors=color, linewidths=1.0,
                   label=f"{name} ({int(f.sum())})")
    fig.colorbar(sc, ax=ax, label="class", fraction=0.04, pad=0.02)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def gradcam_figure(groups: dict[str, tuple[torch.Tensor, np.ndarray, list[str]]], title: str):
    """One row per group: each image and its Grad-CAM overlay below it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max((len(g[0]) for g in groups.values()), default=1) or 1
    fig, axes = plt.subplots(2 * len(groups), cols, figsize=(1.4 * cols, 2.9 * len(groups)), squeeze=False)
    for r, (name, (images, cams, captions)) in enumerate(groups.items()):
        for c in range(cols):
            a, b = axes[2 * r, c], axes[2 * r + 1, c]
            a.axis("off")
            b.axis("off")
            if c >= len(images):
                continue
            _show(a, images[c])
            a.set_title(captions[c], fontsize=6)
            _show(b, images[c])
            b.imshow(cams[c], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[2 * r, 0].text(-0.1, 0.5, name, transform=axes[2 * r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def grid_figure(rows: dict[str, tuple[torch.Tensor, list[str]]], title: str):
    """One row per class: its images with captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max((len(v[0]) for v in rows.values()), default=1) or 1
    fig, axes = plt.subplots(len(rows) or 1, cols, figsize=(1.2 * cols + 1, 1.3 * max(len(rows), 1)), squeeze=False)
    for r, (name, (images, captions)) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                _show(ax, images[c])
                ax.set_title(captions[c], fontsize=6)
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
