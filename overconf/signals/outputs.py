"""Model outputs, computed once per (model, input set) and cached.

An :class:`Outputs` holds logits and penultimate features; every attack, calibration and metric
reads only these tensors (the network is never run again to compute a metric).
"""
from __future__ import annotations

from dataclasses import dataclass

from overconf.core.device import fixed_threads
import torch

from overconf.core.cache import Cache, content_key, tensor_digest
from overconf.core.device import autocast, float32_head, precision, to_device_images
from overconf.models import Classifier

OUTPUTS_VERSION = 1


@dataclass
class Outputs:
    logits: torch.Tensor
    """float32 [N, K]"""
    features: torch.Tensor
    """float32 [N, D]: the head's input"""
    labels: torch.Tensor
    """int64 [N]; -1 where no label applies"""

    def __len__(self) -> int:
        return len(self.logits)

    def subset(self, idx) -> "Outputs":
        return Outputs(self.logits[idx], self.features[idx], self.labels[idx])


@torch.inference_mode()
@fixed_threads
def compute_outputs(model: Classifier, x: torch.Tensor, device: torch.device,
                    batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, features) of ``model`` on ``x`` in eval mode, float32 on the CPU. Under bf16
    autocast (CUDA) the body runs in bf16 and the head in float32 (:func:`~overconf.core.device.float32_head`)."""
    was_training = model.training
    model.eval()
    logits, feats = [], []
    for i in range(0, len(x), batch_size):
        xb = to_device_images(x[i: i + batch_size], device)
        with autocast(device):
            f = model.features(xb)
            z = float32_head(model.head, f)
        logits.append(z.float().cpu())
        feats.append(f.float().cpu())
    model.train(was_training)
    if not logits:
        k, d = model.head.out_features, model.head.in_features
        return torch.empty(0, k), torch.empty(0, d)
    return torch.cat(logits), torch.cat(feats)


def outputs_key(model_key: str, x: torch.Tensor, labels: torch.Tensor, precision: str = "float32") -> str:
    """The outputs' key; ``precision`` (of the forward pass, :func:`overconf.core.device.precision`)
    enters only when it is not float32, so float32 keys are unchanged."""
    what = {"kind": "outputs", "version": OUTPUTS_VERSION, "model": model_key,
            "x": tensor_digest(x), "labels": tensor_digest(labels)}
    if precision != "float32":
        what["precision"] = precision
    return content_key(what)


def cached_outputs(cache: Cache, model_key: str, model: Classifier, x: torch.Tensor,
                   labels: torch.Tensor, device: torch.device) -> Outputs:
    """Outputs of the model with key ``model_key`` on ``x``, from the cache when present."""
    key = outputs_key(model_key, x, labels, precision(device))

    def create():
        logits, feats = compute_outputs(model, x, device)
        return {"logits": logits, "features": feats, "labels": labels.clone()}

    d = cache.get_or_create("outputs", key, create, valid=lambda d: is_outputs_entry(d, len(x)))
    return Outputs(d["logits"], d["features"], d["labels"])


def is_outputs_entry(d: dict, n: int | None = None) -> bool:
    """The structure of a stored :class:`Outputs` (a dict of its three tensors): logits [N, K],
    features and labels [N] of the same N (``n`` when given)."""
    logits, feats, labels = d["logits"], d["features"], d["labels"]
    return (all(isinstance(t, torch.Tensor) for t in (logits, feats, labels)) and logits.dim() == 2
            and labels.dim() == 1 and len(logits) == len(feats) == len(labels)
            and (n is None or len(logits) == n))
