"""Runs sharing a cache train each generator and each batched reference group once: the second
waits on the entry's file lock and reuses the first one's result (two threads stand for two runs)."""
import threading
import time

import pytest
import torch

from overconf.cache import Cache

CPU = torch.device("cpu")


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


def test_a_generator_is_trained_once_for_two_runs(tmp_path, monkeypatch):
    import overconf.gan.training as gan_training
    from overconf.data import load_dataset
    from tests.test_gan import job

    j = job(load_dataset("fashion_mnist"), steps=4)
    calls = slow_counting(monkeypatch, gan_training, "train_gan")
    a, b = both(lambda: gan_training.load_or_train_generator(j, Cache(tmp_path), CPU, progress=False, log_every=2))
    assert len(calls) == 1
    for v, w in zip(a.generator.state_dict().values(), b.generator.state_dict().values()):
        assert torch.equal(v, w)


def test_a_batched_reference_group_is_trained_once_for_two_runs(tmp_path, monkeypatch):
    import overconf.reference.manager as manager
    from tests.test_reference import reference_set

    rs = reference_set("batched", k=4, epochs=1)
    calls = slow_counting(monkeypatch, manager, "train_batched")
    a, b = both(lambda: rs.state_dicts(list(range(4)), Cache(tmp_path), CPU))
    assert len(calls) == 1
    for sa, sb in zip(a, b):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
