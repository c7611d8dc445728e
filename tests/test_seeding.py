"""isolated_rng: seeded global RNG inside the block, the caller's state restored after it, on the
CPU and on every CUDA device (checked without a GPU by recording torch.cuda's RNG calls)."""
import contextlib

import pytest
import torch

from overconf.core.seeding import isolated_rng


def test_isolated_rng_seeds_the_block_and_restores_the_cpu_state():
    torch.manual_seed(123)
    expected_outside = torch.rand(5)
    torch.manual_seed(123)
    with isolated_rng(7):
        inside = torch.rand(5)
    assert torch.equal(inside, torch.rand(5, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(torch.rand(5), expected_outside)  # the caller's stream is untouched


class FakeCudaGenerator:
    def __init__(self, index, log):
        self.index, self.log = index, log

    def manual_seed(self, seed):
        self.log.append(self.index)
        return self


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two CUDA devices as seen by torch.cuda's RNG functions: which devices get forked by
    fork_rng, and which get their RNG seeded (directly, or queued for CUDA's initialisation)."""
    state = {"forked": None, "seeded": [], "initialised": True}
    real_fork = torch.random.fork_rng

    @contextlib.contextmanager
    def fork_rng(devices=None, enabled=True, device_type=None, **kw):
        state["forked"] = list(range(2)) if devices is None else list(devices)
        with real_fork(devices=[], enabled=enabled):  # the CPU state only
            yield

    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["initialised"])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: state["seeded"].extend(range(2)))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: state["seeded"].append(0))
    monkeypatch.setattr(torch.cuda, "default_generators",
                        tuple(FakeCudaGenerator(i, state["seeded"]) for i in range(2)))
    return state


@pytest.mark.parametrize("device", ["cpu", "cuda:1", "cuda"])
def test_isolated_rng_forks_every_cuda_device_it_seeds(fake_cuda, device):
    """torch.manual_seed reseeds every CUDA device; before the fix only the CPU RNG and at most the
    block's device were forked, so the other initialised devices kept the block's seed."""
    with isolated_rng(5, device):
        pass
    seeded, forked = set(fake_cuda["seeded"]), set(fake_cuda["forked"])
    assert seeded <= forked, f"CUDA devices seeded but not restored: {sorted(seeded - forked)}"
    assert forked == {0, 1}  # every initialised device is forked
    if device != "cpu":  # the block's own device is seeded (dropout on the GPU is reproducible)
        assert seeded == {int(device.split(":")[1]) if ":" in device else 0}
    else:
        assert seeded == set()


def test_isolated_rng_queues_no_cuda_seed_before_cuda_is_initialised(fake_cuda):
    """Without initialised CUDA, torch.manual_seed queues a reseed of every device for CUDA's
    initialisation: the caller's first CUDA stream would start from the block's seed."""
    fake_cuda["initialised"] = False
    with isolated_rng(5):
        pass
    assert fake_cuda["seeded"] == [] and fake_cuda["forked"] == []
