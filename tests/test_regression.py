"""Result values stay put: a tiny study that touches every layer (sources incl. derived and OOD,
calibration, threshold / ML-Leaks / reference-model attacks, a retrained setting) gives the rows
stored in tests/data/regression_rows.csv. A refactor must reproduce them; a change that is meant
to alter a value regenerates the file (``python tests/test_regression.py``) and says why in its
commit."""
from __future__ import annotations

import copy
import csv
import math
import sys
from pathlib import Path

import pytest

from conftest import TINY

STORED = Path(__file__).parent / "data" / "regression_rows.csv"

RAW = copy.deepcopy(TINY) | {
    "recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
    "sources": ["test", "digits", "scaled", "gaussian"],
    "attacks": ["max_score", "entropy", {"name": "salem", "epochs": 10}, "loss",
                {"name": "lira", "online": True}, {"name": "rmia", "online": True}],
    "settings": {"baseline": {}, "temperature_fit": {"calibration": {"name": "temperature", "T": "fit"}},
                 "label_smoothing": {"recipe": {"label_smoothing": 0.1}}},
    "reference": {"num_models": 4, "population": 200},
}


def run_rows(tmp: Path) -> list[dict]:
    from overconf.runner.validation import config_from_dict
    from overconf.runner.study import run_study

    raw = copy.deepcopy(RAW) | {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    return run_study(config_from_dict(raw), tmp / "run", report=False).rows


def key(r: dict) -> tuple:
    return (r["model"], int(r["seed"]), r["setting"], r["attack"], r["source"], r["metric"])


def test_result_values_are_unchanged(tmp_path):
    stored = {key(r): float(r["value"]) for r in csv.DictReader(STORED.open())}
    rows = {key(r): float(r["value"]) for r in run_rows(tmp_path)}
    missing = sorted(set(stored) - set(rows))
    assert not missing, f"rows no longer produced: {missing[:5]}"
    changed = [(k, stored[k], rows[k]) for k in stored
               if not (math.isnan(stored[k]) and math.isnan(rows[k]))
               and not math.isclose(stored[k], rows[k], rel_tol=1e-6, abs_tol=1e-9)]
    assert not changed, f"{len(changed)} values changed, e.g. {changed[:5]}"


if __name__ == "__main__":  # regenerate the stored rows
    import tempfile

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        rows = run_rows(Path(d))
    STORED.parent.mkdir(exist_ok=True)
    with STORED.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["model", "seed", "setting", "attack", "source", "metric", "value"],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {STORED}", file=sys.stderr)
