"""A user's images and labels (the audit, overconf.runner.audit) as uint8 [N, C, H, W] and int64 [N].

Accepted, in Python: a pair ``(images, labels)`` of tensors or arrays; a torchvision-style dataset
(``len`` and ``ds[i] -> (image, label)``; one with ``.data`` and ``.targets``, as torchvision's
MNIST / CIFAR classes, is read from those raw arrays, so its ``transform`` is not applied); the
path of an image folder (``root/<class>/<image>``, classes in sorted order, as torchvision's
``ImageFolder``); or the mapping a YAML config writes (:func:`read_spec`). Images are uint8, or
floats in [0, 1] on the 1/255 grid (``ToTensor``'s output), in [N, C, H, W], [N, H, W] or
[N, H, W, C] layout; the model's normalisation is applied later, once, by overconf.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from overconf.core.errors import ConfigError
from ..config.audit import DATA_KINDS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def as_images(x: Any, where: str) -> torch.Tensor:
    """uint8 [N, C, H, W] from uint8 or [0, 1]-float images in NCHW, NHW or NHWC (C in 1, 3)."""
    t = (x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))).detach().cpu()
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() == 4 and t.shape[1] not in (1, 3) and t.shape[-1] in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ConfigError(f"{where}: images must be [N, C, H, W], [N, H, W] or [N, H, W, C] with C = 1 or 3, "
                          f"got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.contiguous()
    if t.is_floating_point():
        scaled = t.double() * 255
        if len(t) and (scaled.min() < 0 or scaled.max() > 255 or (scaled - scaled.round()).abs().max() > 1e-3):
            raise ConfigError(f"{where}: float images must be raw pixels in [0, 1] on the 1/255 grid (what "
                              f"ToTensor gives), not normalised inputs; pass uint8 images (or the dataset "
                              f"without its Normalize transform) and give the normalisation in 'normalize'")
        return scaled.round().to(torch.uint8).contiguous()
    raise ConfigError(f"{where}: images must be uint8 or float in [0, 1], got {t.dtype}")


def as_labels(y: Any, n: int, where: str) -> torch.Tensor:
    t = (y if isinstance(y, torch.Tensor) else torch.from_numpy(np.array(y))).detach().cpu().reshape(-1)
    if t.is_floating_point() or t.dtype == torch.bool or len(t) != n:
        raise ConfigError(f"{where}: labels must be {n} integer class indices (one per image), got "
                          f"{len(t)} of type {t.dtype}")
    if n and int(t.min()) < 0:
        raise ConfigError(f"{where}: labels must be class indices >= 0, got {int(t.min())}")
    return t.long()


def from_pair(data: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ConfigError(f"{where} must be a pair (images, labels), got {type(data).__name__}")
    images = as_images(data[0], f"{where} images")
    return images, as_labels(data[1], len(images), f"{where} labels")


def from_dataset(ds: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision-style dataset: ``.data`` / ``.targets`` (or ``.labels``) when present, else every item."""
    labels = getattr(ds, "targets", getattr(ds, "labels", None))
    if hasattr(ds, "data") and labels is not None:
        return from_pair((ds.data, labels), where)
    items = [ds[i] for i in range(len(ds))]
    if not all(isinstance(it, (tuple, list)) and len(it) >= 2 for it in items):
        raise ConfigError(f"{where}: the dataset's items must be (image, label) pairs")
    images = [as_images(it[0][None] if isinstance(it[0], torch.Tensor) else np.asarray(it[0])[None], where)
              for it in items]
    if len({tuple(i.shape[1:]) for i in images}) > 1:
        raise ConfigError(f"{where}: the dataset's images differ in size; resize them to one size first")
    x = torch.cat(images) if images else torch.empty(0, 1, 1, 1, dtype=torch.uint8)
    return x, as_labels([int(it[1]) for it in items], len(x), where)


def from_image_folder(root: str | Path, where: str, classes: list[str] | None = None,
                      channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``root/<class>/<image>``: classes in sorted folder order (or ``classes``), files in sorted
    order; grey images stay one channel unless ``channels`` = 3 (RGB images are 3 channels)."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{where}: image folder '{root}' does not exist; give a folder of class folders")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"{where}: folders {unknown} of '{root}' are not in classes {classes}")
    arrays, labels = [], []
    for k, name in enumerate(classes):
        for path in sorted(p for p in (root / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(path) as im:
                arrays.append(np.asarray(im.convert("RGB")))
            labels.append(k)
    if not arrays:
        raise ConfigError(f"{where}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of '{root}'")
    if len({a.shape for a in arrays}) > 1:
        raise ConfigError(f"{where}: the images of '{root}' differ in size; resize them to one size first")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    grey = bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all())
    if channels == 1 or (channels is None and grey):
        x = x[:, :1].contiguous() if grey else x.float().mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)) \
            .sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    return x, torch.tensor(labels, dtype=torch.long)


def read_any(data: Any, where: str, base_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels from any accepted form (module docstring)."""
    if isinstance(data, Mapping):
        return read_spec(data, base_dir or Path.cwd(), where)
    if isinstance(data, (str, Path)):
        return from_image_folder(_path(data, base_dir or Path.cwd()), where)
    if isinstance(data, (tuple, list)):
        return from_pair(data, where)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return from_dataset(data, where)
    raise ConfigError(f"{where} must be (images, labels), a torchvision-style dataset, an image folder or a "
                      f"data mapping, got {type(data).__name__}")


def _path(value: Any, base_dir: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base_dir / p


def _load(path: Path, where: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{where}: file '{path}' does not exist (paths are relative to the config's folder)")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix in (".txt", ".csv"):
        return np.loadtxt(path, dtype=np.int64, delimiter="," if path.suffix == ".csv" else None, ndmin=1)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors: not a plain tensor file
        raise ConfigError(f"{where}: cannot read '{path}' as tensors (torch.load, weights_only=True: {e}); save "
                          f"plain tensors, e.g. torch.save({{'images': x, 'labels': y}}, path)") from None


def read_spec(spec: Mapping[str, Any], base_dir: Path, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A YAML data spec: one of ``tensors: FILE`` (a dict with images / labels, or x / y, or a pair),
    ``dataset: NAME`` (overconf's, with ``split``, ``root``, ``download``), ``torchvision: CLASS``
    (``root``, ``kwargs``), ``image_folder: DIR`` (``classes``, ``channels``); then ``indices`` (a
    file or a list: which items, in that order) and ``limit`` (the first n). Paths are relative to
    ``base_dir`` (the config's folder)."""
    kind = [k for k in DATA_KINDS if k in spec]
    if len(kind) != 1:
        raise ConfigError(f"{where} must name exactly one of {', '.join(DATA_KINDS)}, got {sorted(spec)}")
    kind = kind[0]
    if kind == "tensors":
        obj = _load(_path(spec["tensors"], base_dir), where)
        if isinstance(obj, Mapping):
            pick = lambda *names: next((obj[n] for n in names if n in obj), None)  # noqa: E731
            obj = (pick("images", "x", "inputs"), pick("labels", "y", "targets"))
            if any(v is None for v in obj):
                raise ConfigError(f"{where}: the tensors file must hold 'images' and 'labels' (or x and y)")
        x, y = from_pair(obj, where)
    elif kind == "dataset":
        from .datasets import load_dataset

        ds = load_dataset(spec["dataset"], spec.get("root"), bool(spec.get("download", False)))
        split = spec.get("split", "train")
        if split not in ("train", "test"):
            raise ConfigError(f"{where}.split must be train or test, got {split!r}")
        x, y = (ds.train_x, ds.train_y) if split == "train" else (ds.test_x, ds.test_y)
    elif kind == "torchvision":
        import torchvision.datasets as tvd

        cls = getattr(tvd, str(spec["torchvision"]), None)
        if cls is None:
            raise ConfigError(f"{where}: torchvision.datasets has no class '{spec['torchvision']}'")
        root = spec.get("root")
        x, y = from_dataset(cls(str(_path(root, base_dir)) if root else None, **dict(spec.get("kwargs") or {})),
                            where)
    else:
        x, y = from_image_folder(_path(spec["image_folder"], base_dir), where, spec.get("classes"),
                                 spec.get("channels"))
    if spec.get("indices") is not None:
        raw = spec["indices"]
        idx = torch.as_tensor(np.asarray(_load(_path(raw, base_dir), where) if isinstance(raw, (str, Path))
                                         else raw)).long().reshape(-1)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(x)):
            raise ConfigError(f"{where}.indices must lie in [0, {len(x)}), got {int(idx.min())}..{int(idx.max())}")
        x, y = x[idx], y[idx]
    if spec.get("limit") is not None:
        x, y = x[: int(spec["limit"])], y[: int(spec["limit"])]
    return x, y
