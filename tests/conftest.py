"""Shared fixtures: tiny studies on real Fashion-MNIST slices that run in seconds on a CPU."""
from __future__ import annotations

import contextlib
import copy
import threading
import time

import pytest
import torch

from overconf.runner.validation import config_from_dict

TINY = {
    "name": "tiny",
    "seeds": [0],
    "device": "cpu",
    "progress": False,
    "data": {
        "dataset": "fashion_mnist",
        "splits": {"target_train": 400, "shadow_train": 400, "calibration": 200,
                   "target_test": 300, "shadow_test": 300},
        "eval_size": 200,
        "fit_size": 200,
    },
    "models": [{"arch": "small_resnet", "params": {"width": 8}}],
    "recipe": {"epochs": 4, "lr": 0.003, "batch_size": 64},
    "sources": ["test", "digits", "scaled", "gaussian"],
    "attacks": ["max_score", "entropy", {"name": "salem", "epochs": 10}],
    "settings": {"baseline": {}},
    "metrics": {"bootstrap": 100},
    "report": {"figures": False, "tensorboard": False},
}


@pytest.fixture
def tiny_raw(tmp_path) -> dict:
    raw = copy.deepcopy(TINY)
    raw["cache_dir"] = str(tmp_path / "checkpoints")
    raw["output_dir"] = str(tmp_path / "runs")
    return raw


@pytest.fixture
def tiny_cfg(tiny_raw):
    return config_from_dict(tiny_raw)


@contextlib.contextmanager
def one_thread():
    """Tiny networks gain nothing from intra-op threads and lose a lot on shared, oversubscribed
    cores (OpenMP waits on descheduled threads)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Every test and fixture (module-scoped ones included) runs on one thread."""
    with one_thread():
        yield


# ---------------------------------------------------------------- two runs sharing a cache
def both(ask) -> list:
    """Call ``ask()`` in two threads started together; their results."""
    results, errors, start = [None, None], [], threading.Barrier(2)

    def run(i):
        try:
            start.wait()
            results[i] = ask()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


def slow_counting(monkeypatch, module, name) -> list:
    real, calls = getattr(module, name), []

    def slow(*args, **kw):
        calls.append(1)
        time.sleep(0.5)
        return real(*args, **kw)

    monkeypatch.setattr(module, name, slow)
    return calls
