"""Per-sample scores of every cell, for later figures and comparisons without re-running models."""
from __future__ import annotations

import io
from pathlib import Path

import torch

from overconf.core.cache import atomic_write_bytes


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
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_per_sample(path: str | Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=False)
