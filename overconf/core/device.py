"""Device choice and the CUDA fast paths (bf16 autocast, channels_last)."""
from __future__ import annotations

import contextlib

import torch

from overconf.core.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device '{name}' is not a torch device; use auto, cpu or cuda[:N]") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but CUDA is not available; use --set device=cpu")
    return device


AUTOCAST_DTYPES: dict[str, torch.dtype] = {"cuda": torch.bfloat16}
"""The autocast dtype per device type; a device type not listed runs in float32 (the CPU). The one
place the precision policy lives: :func:`autocast` and :func:`precision` read it (tests put
``"cpu": torch.bfloat16`` here to run the bf16 path on a CPU)."""


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (CPU runs stay in float32)."""
    dtype = AUTOCAST_DTYPES.get(torch.device(device).type)
    if dtype is not None:
        return torch.autocast(torch.device(device).type, dtype=dtype)
    return contextlib.nullcontext()


def precision(device: torch.device) -> str:
    """The precision of the forward passes on ``device``: ``"float32"`` (no autocast) or the
    autocast dtype's name (``"bfloat16"`` on CUDA). Cache keys of trained models and of outputs
    record it when it is not float32, so CPU and GPU results never mix silently (float32 keys are
    those of before the field existed)."""
    dtype = AUTOCAST_DTYPES.get(torch.device(device).type)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def float32_head(head: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``head(features)`` in float32, outside any autocast region: logits (and the loss, the
    log-probabilities, every score an attack thresholds) keep float32's 24-bit mantissa even when
    the body ran in bf16 (8 bits: log p of a confident prediction would be quantised, and the
    false positives overconf measures are exactly such confident outputs). One small matmul, so this
    costs nothing next to the body, unlike a second float32 scoring pass (chosen over that)."""
    kind = features.device.type
    if not torch.is_autocast_enabled(kind):
        return head(features)
    with torch.autocast(kind, enabled=False):
        return head(features.float())


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def to_device_images(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an image batch to ``device`` in the layout the fast path wants."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=memory_format(device)) if x.dim() == 4 else x


def to_cpu(obj):
    """Tensors in nested dicts / lists detached and moved to the CPU (for checkpoints)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj


COMPUTE_THREADS = 1
"""intra-op threads of every training and every cached forward pass on the CPU: results do not
depend on ``torch.set_num_threads`` (1 and 2 threads reduce in different orders and give floats
that differ in the last bits; the OOD false-positive rates of small studies amplify that)"""


def fixed_threads(fn):
    """Decorator: run ``fn`` with :data:`COMPUTE_THREADS` intra-op threads, the caller's count
    restored afterwards (a no-op when it is already that). Parallelism comes from running models
    or processes side by side (Ray, several studies), not from splitting one small model's kernels."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        if before == COMPUTE_THREADS:
            return fn(*args, **kwargs)
        torch.set_num_threads(COMPUTE_THREADS)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper
