"""Per-sample scores of every cell, for later figures and comparisons without re-running models.

``per_sample.pt`` holds plain data only (tensors, numbers, strings in dicts) and is read with
``torch.load(weights_only=True)`` (:mod:`overconf.core.plain_data`): a run folder received from
someone else is read, never executed. Its structure (:func:`check_per_sample`): cell key ->
{model, setting, seed, members, sources: {label: part}, scores: {attack: {set: tensor}},
thresholds}, each part {max_score, labels, predicted, probs}.
"""
from __future__ import annotations

from pathlib import Path

import torch

from overconf.core.cache import atomic_write_bytes
from overconf.core.plain_data import load_plain, plain_bytes

PART_KEYS = ("max_score", "labels", "predicted", "probs")
CELL_KEYS = ("model", "setting", "seed", "members", "sources", "scores", "thresholds")


def cell_key(cell) -> str:
    return f"{cell.model}/{cell.setting}/s{cell.seed}"


def write_per_sample(result, path: Path) -> None:
    data = {}
    for cell in result.cells:
        def summary(s):
            return {"max_score": s.max_score.float(), "labels": s.labels, "predicted": s.predicted,
                    "probs": s.probs.float()}

        data[cell_key(cell)] = {
            "model": cell.model, "setting": cell.setting, "seed": cell.seed,
            "members": summary(cell.members),
            "sources": {k: summary(v) for k, v in cell.sources.items()},
            "scores": {a: {k: v.double() for k, v in d.items()} for a, d in cell.scores.items()},
            "thresholds": dict(cell.thresholds),
        }
    atomic_write_bytes(path, plain_bytes(data, "per_sample.pt"))


def load_per_sample(path: str | Path) -> dict:
    """The cells of ``path``; raises ``pickle.UnpicklingError`` for a file that names anything but
    plain data (nothing in it is run) and ValueError for plain data of another structure."""
    data = load_plain(Path(path))
    check_per_sample(data)
    return data


def check_per_sample(data) -> None:
    """Raise ValueError naming the first part of ``data`` that is not per_sample.pt's structure."""
    if not isinstance(data, dict):
        raise ValueError(f"not a mapping of cells but a {type(data).__name__}")
    for key, cell in data.items():
        if not isinstance(cell, dict) or any(k not in cell for k in CELL_KEYS):
            raise ValueError(f"cell {key!r} is not a mapping with keys {', '.join(CELL_KEYS)}")
        if not (isinstance(cell["model"], str) and isinstance(cell["setting"], str) and isinstance(cell["seed"], int)):
            raise ValueError(f"cell {key!r}: model and setting must be names and seed an integer")
        if not isinstance(cell["sources"], dict):
            raise ValueError(f"cell {key!r}: 'sources' is not a mapping of sources")
        for name, part in [("members", cell["members"]), *cell["sources"].items()]:
            if not isinstance(part, dict) or any(not isinstance(part.get(k), torch.Tensor) for k in PART_KEYS):
                raise ValueError(f"cell {key!r}, {name}: not a mapping of tensors {', '.join(PART_KEYS)}")
            if part["max_score"].dim() != 1 or part["probs"].dim() != 2 or len(part["probs"]) != len(part["max_score"]):
                raise ValueError(f"cell {key!r}, {name}: max_score [N] and probs [N, K] do not match")
        scores, thresholds = cell["scores"], cell["thresholds"]
        if not (isinstance(scores, dict) and all(isinstance(d, dict) and all(isinstance(v, torch.Tensor)
                                                                          for v in d.values())
                                                 for d in scores.values())):
            raise ValueError(f"cell {key!r}: 'scores' is not attack -> set -> tensor")
        if not isinstance(thresholds, dict):
            raise ValueError(f"cell {key!r}: 'thresholds' is not a mapping of attacks")
