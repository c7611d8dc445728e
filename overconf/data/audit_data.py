"""An audit's data (overconf.runner.audit) laid out as one dataset with fixed splits, so that the
study's machinery (sources, shadow model, reference models, RMIA's population, GAN) runs on it.

Given the target's members M, non-members O (held out, never trained on) and public data P (the
same distribution, never trained on by the target; without P, the non-members beyond ``eval_size``
are P), the pools and splits are

- train pool: M (``target_train``) | P[:a] (``shadow_train``) | P[a+b : a+b+c] (``calibration``) |
  the rest of P (``reserve``: extra reference points, RMIA's population, GAN training);
- test pool: O (``target_test``; the first ``eval_size`` are evaluated) | P[a : a+b] (``shadow_test``);

with a = ``shadow_train``, b = ``shadow_test``, c = ``calibration`` (by default half of what the shadow
leaves: held-out public data, e.g. QMIA's regressor trains on it). P is first put in a seeded,
class-stratified order (``shuffle_public``). So the reference data of overconf.reference.manager are
M[:eval_size], O[:eval_size], the shadow's fit points and ``reserve[:extra_points]``: every evaluated
member and non-member is IN for half the reference models (LiRA online, RMIA). Normalisation is the
user's: model input = (image / 255 - mean) / std, per channel (torchvision's ToTensor + Normalize).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from overconf.core.errors import ConfigError
from overconf.core.seeding import generator
from .datasets import ImageDataset
from .sources import image_digests
from .splits import Splits, stratified_order

Data = tuple[torch.Tensor, torch.Tensor]


@dataclass(eq=False)
class AuditDataset(ImageDataset):
    """The audit's pools (see the module docstring), its fixed splits and the user's normalisation."""

    input_mean: torch.Tensor
    """[C, 1, 1] float32"""
    input_std: torch.Tensor
    splits: Splits
    sizes: dict[str, int] = field(default_factory=dict)
    """the resolved split sizes and eval_size / fit_size"""

    @property
    def _pixel_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_mean, self.input_std


def channel_values(values: list[float], channels: int, where: str) -> torch.Tensor:
    """[C, 1, 1] float32 from one value per channel (or one for all)."""
    if len(values) not in (1, channels):
        raise ConfigError(f"{where} has {len(values)} values but the images have {channels} channels; "
                          f"give one value per channel (or one for all)")
    return torch.tensor(list(values) * (channels if len(values) == 1 else 1), dtype=torch.float32).view(-1, 1, 1)


def _drop_members(label: str, data: Data, members: set[bytes], overlap: str) -> Data:
    """``data`` without images equal to a member (``overlap: remove``), or an error (``refuse``)."""
    hits = torch.tensor([d in members for d in image_digests(data[0])], dtype=torch.bool)
    n = int(hits.sum())
    if n and overlap != "remove":
        raise ConfigError(f"data.{label}: {n} of its {len(hits)} images are equal to member images (the "
                          f"target trained on them); remove them, or set data.overlap: remove to drop them")
    return (data[0][~hits], data[1][~hits]) if n else data


def audit_dataset(members: Data, nonmembers: Data, public: Data | None, *, mean: list[float], std: list[float],
                  num_classes: int, seed: int, eval_size: int | None = None, fit_size: int | None = None,
                  shadow_train: int | None = None, shadow_test: int | None = None, calibration: int | None = None,
                  shuffle_public: bool = True, overlap: str = "refuse", name: str = "audit") -> AuditDataset:
    """The audit's :class:`AuditDataset`; a size left None takes what the data allow (module docstring)."""
    parts: dict[str, Any] = {"members": members, "nonmembers": nonmembers, "public": public}
    shape = tuple(members[0].shape[1:])
    for label, d in parts.items():
        if d is None:
            continue
        if tuple(d[0].shape[1:]) != shape:
            raise ConfigError(f"data.{label}: images of shape {tuple(d[0].shape[1:])}, but the members' are {shape}; "
                              f"give every part images of one shape (C, H, W)")
        if len(d[1]) and int(d[1].max()) >= num_classes:
            raise ConfigError(f"data.{label}: label {int(d[1].max())}, but the model has {num_classes} outputs")
    if len(members[0]) == 0 or len(nonmembers[0]) == 0:
        raise ConfigError("data.members and data.nonmembers must each hold at least one image")
    digests = set(image_digests(members[0]))
    nonmembers = _drop_members("nonmembers", nonmembers, digests, overlap)
    n_m, n_o = len(members[0]), len(nonmembers[0])
    eval_size = eval_size if eval_size is not None else min(n_m, n_o if public is not None else n_o // 2)
    for what, n in (("members", n_m), ("nonmembers", n_o)):
        if not 1 <= eval_size <= n:
            raise ConfigError(f"data.eval_size = {eval_size} must lie in [1, {n}] (the {n} {what}); lower it")
    if public is None:  # the non-members beyond the evaluated ones are the public data
        public, nonmembers = ((nonmembers[0][eval_size:], nonmembers[1][eval_size:]),
                              (nonmembers[0][:eval_size], nonmembers[1][:eval_size]))
    public = _drop_members("public", public, digests, overlap)
    if shuffle_public:
        order = stratified_order(public[1], generator(seed, "audit", "public"))
        public = (public[0][order], public[1][order])
    n_p = len(public[0])
    a = shadow_train if shadow_train is not None else min(n_m, max(n_p - (calibration or 0), 0) // 2)
    fit = fit_size if fit_size is not None else min(eval_size, a)
    b = shadow_test if shadow_test is not None else fit
    if calibration is None:  # half of the rest: held-out public data for what trains on it (QMIA's regressor)
        calibration = max(n_p - a - b, 0) // 2
    if not (1 <= fit <= min(a, b)) or a + b + calibration > n_p:
        raise ConfigError(
            f"the public data hold {n_p} images, but the shadow model needs shadow_train ({a}) + shadow_test ({b}) "
            f"+ calibration ({calibration}) of them and fit_size ({fit}) must lie in [1, min(shadow_train, "
            f"shadow_test)]; pass more public data (data.public, or more non-members) or lower data.shadow_train / "
            f"shadow_test / fit_size / calibration")
    px, py = public
    cut = (a, a + b, a + b + calibration)
    train_x = torch.cat([members[0], px[: cut[0]], px[cut[1]: cut[2]], px[cut[2]:]])
    train_y = torch.cat([members[1], py[: cut[0]], py[cut[1]: cut[2]], py[cut[2]:]])
    test_x, test_y = torch.cat([nonmembers[0], px[cut[0]: cut[1]]]), torch.cat([nonmembers[1], py[cut[0]: cut[1]]])
    at = torch.arange
    splits = Splits(target_train=at(n_m), shadow_train=at(n_m, n_m + a), calibration=at(n_m + a, n_m + a + calibration),
                    reserve=at(n_m + a + calibration, len(train_x)), target_test=at(len(nonmembers[0])),
                    shadow_test=at(len(nonmembers[0]), len(test_x)))
    sizes = {"target_train": n_m, "shadow_train": a, "calibration": calibration, "target_test": len(nonmembers[0]),
             "shadow_test": b, "reserve": len(splits.reserve), "eval_size": eval_size, "fit_size": fit}
    c = shape[0]
    return AuditDataset(name, train_x, train_y, test_x, test_y, [str(k) for k in range(num_classes)],
                        channel_values(mean, c, "normalize.mean"), channel_values(std, c, "normalize.std"),
                        splits, sizes)
