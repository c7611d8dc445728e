"""Runs sharing a cache train each generator and each batched reference group once: the second
waits on the entry's file lock and reuses the first one's result (two threads stand for two runs)."""

import pytest
import torch

from overconf.core.cache import Cache

from conftest import both, slow_counting

CPU = torch.device("cpu")


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
