"""What overconf stores in a file it reads back (cache entries, a run's ``per_sample.pt``): plain
data only, loaded with ``torch.load(..., weights_only=True)``.

Plain data is what PyTorch's weights-only unpickler rebuilds without running code: tensors,
``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``torch.dtype``,
``torch.Size``, and lists, tuples, sets and dicts (``OrderedDict`` included) of plain data. A
pickle naming anything else (a class, a function: the way a forged file runs code) is refused by
that unpickler before anything is built. :func:`check_plain` keeps overconf from storing what it
could not read back (a dataclass, a NumPy scalar): it fails when writing, not on every later read.
"""
from __future__ import annotations

import collections
import io
from pathlib import Path
from typing import Any

import torch

SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.Size)
"""exact types (a NumPy float64 is a float subclass, but pickles as a NumPy object)"""
CONTAINERS = (list, tuple, set)


def check_plain(obj: Any, where: str = "payload") -> None:
    """Raise TypeError naming the first value of ``obj`` that is not plain data (its path in ``obj``)."""
    if isinstance(obj, torch.Tensor) or type(obj) in SCALARS:
        return
    if type(obj) in (dict, collections.OrderedDict):
        for k, v in obj.items():
            check_plain(k, f"{where} key")
            check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in CONTAINERS:
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, not plain data (tensors, numbers, "
                    f"strings, bytes, lists, tuples, dicts): convert it before storing, it could not be read back "
                    f"with torch.load(weights_only=True)")


def plain_bytes(obj: Any, where: str = "payload") -> bytes:
    """``torch.save`` of plain data ``obj`` (checked first: :func:`check_plain`)."""
    check_plain(obj, where)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_plain(data: bytes | str | Path) -> Any:
    """Plain data saved by :func:`plain_bytes` (bytes, or a file's path), on the CPU; a file that
    names anything else (code) raises ``pickle.UnpicklingError`` without running it."""
    source = io.BytesIO(data) if isinstance(data, bytes) else Path(data)
    return torch.load(source, map_location="cpu", weights_only=True)


def is_state_dict_of(stored: Any, template: dict[str, torch.Tensor]) -> bool:
    """True if ``stored`` is a state dict with the names, shapes and dtypes of ``template`` (a
    module's ``state_dict()``): what ``load_state_dict`` of that module accepts."""
    return (isinstance(stored, dict) and stored.keys() == template.keys()
            and all(isinstance(v, torch.Tensor) and v.shape == template[k].shape and v.dtype == template[k].dtype
                    for k, v in stored.items()))
