"""What the cache trusts: plain data loaded with weights_only=True (a forged entry never runs), the
key an entry was stored under (a file moved to another key is refused), and the structure its
caller needs (anything else is rebuilt like a damaged entry, never a traceback)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import pathlib

import pytest
import torch

from overconf.core.cache import ENTRY_FORMAT, Cache
from overconf.signals.outputs import cached_outputs
from overconf.training.jobs import load_or_train

from test_training import make_job

CPU = torch.device("cpu")


class Forged:
    """Unpickling it creates ``marker``: what a forged cache entry could do (any code)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def checksummed(payload) -> bytes:
    """A cache file of ``payload``: its SHA-256 line, then torch.save's bytes (a valid checksum)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    return hashlib.sha256(data).hexdigest().encode() + b"\n" + data


def test_a_forged_entry_with_a_valid_checksum_is_refused_and_rebuilt_without_running(tmp_path):
    cache = Cache(tmp_path / "cache")
    ran = tmp_path / "code_ran"
    forged = {"format": ENTRY_FORMAT, "kind": "outputs", "key": "k", "payload": Forged(ran)}
    torch.load(io.BytesIO(checksummed(forged).partition(b"\n")[2]), weights_only=False)  # the forgery is real:
    assert ran.exists()  # a plain unpickler runs its code
    ran.unlink()

    cache.path("outputs", "k").parent.mkdir(parents=True)
    cache.path("outputs", "k").write_bytes(checksummed(forged))
    assert cache.load("outputs", "k") is None
    assert not ran.exists()  # refused before anything was built
    assert not cache.path("outputs", "k").exists()
    assert torch.equal(cache.get_or_create("outputs", "k", lambda: torch.ones(2)), torch.ones(2))  # rebuilt
    assert torch.equal(cache.load("outputs", "k"), torch.ones(2)) and not ran.exists()


def test_an_entry_read_under_another_key_is_refused(tmp_path):
    """Entries swapped by hand: each file records the kind and key it was stored under."""
    cache = Cache(tmp_path)
    cache.save("models", "a", {"w": torch.zeros(1)})
    cache.save("models", "b", {"w": torch.ones(1)})
    pa, pb = cache.path("models", "a"), cache.path("models", "b")
    blob_a, blob_b = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(blob_b)
    pb.write_bytes(blob_a)
    assert cache.load("models", "a") is None and cache.load("models", "b") is None
    cache.save("outputs", "a", {"w": torch.zeros(1)})
    cache.path("outputs", "a").rename(cache.path("models", "a"))  # same key, another kind
    assert cache.load("models", "a") is None


def test_an_entry_without_its_key_is_rebuilt(tmp_path):
    """An entry of the previous format (the bare payload) cannot show its key: rebuilt once."""
    cache = Cache(tmp_path)
    cache.path("outputs", "k").parent.mkdir(parents=True)
    cache.path("outputs", "k").write_bytes(checksummed(torch.ones(3)))
    assert cache.load("outputs", "k") is None and not cache.path("outputs", "k").exists()


def test_swapped_target_and_shadow_models_are_retrained_not_used(tmp_path):
    cache = Cache(tmp_path)
    target, shadow = make_job(seed=0, epochs=1), make_job(seed=1, epochs=1)
    first = load_or_train(target, cache, CPU, progress=False)
    load_or_train(shadow, cache, CPU, progress=False)
    path_t = cache.path("models", first.key)
    path_s = cache.path("models", load_or_train(shadow, cache, CPU, progress=False).key)
    blob_t, blob_s = path_t.read_bytes(), path_s.read_bytes()
    path_t.write_bytes(blob_s)
    path_s.write_bytes(blob_t)
    misses = cache.misses
    again = load_or_train(target, cache, CPU, progress=False)
    assert cache.misses == misses + 1  # retrained, not the shadow's weights
    for (name, v), w in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(v, w), name


@pytest.mark.parametrize("stored", [
    {"state_dict": {}, "history": []},  # another architecture's (empty) state dict
    {"state_dict": {"head.weight": torch.zeros(2, 2)}, "history": []},
    {"weights": 1},  # no state_dict at all
    [1, 2, 3],
])
def test_a_model_entry_of_another_structure_is_retrained(tmp_path, stored):
    cache = Cache(tmp_path)
    job = make_job(epochs=1)
    reference = load_or_train(job, Cache(tmp_path / "clean"), CPU, progress=False)
    cache.save("models", reference.key, stored)  # a valid checksum and key, the wrong structure
    trained = load_or_train(job, cache, CPU, progress=False)
    assert cache.misses == 1
    assert torch.equal(trained.model.head.weight, reference.model.head.weight)


def test_an_outputs_entry_of_another_structure_is_recomputed(tmp_path):
    from overconf.signals.outputs import outputs_key

    cache = Cache(tmp_path)
    job = make_job(epochs=0)
    trained = load_or_train(job, cache, CPU, progress=False)
    x, y = job.inputs()[:10], job.labels[:10]
    cache.save("outputs", outputs_key(trained.key, x, y), {"logits": torch.zeros(3, 3)})  # 3 rows, no features
    outs = cached_outputs(cache, trained.key, trained.model, x, y, CPU)
    assert outs.logits.shape == (10, 3) and torch.equal(outs.labels, y)


def test_only_plain_data_is_stored(tmp_path):
    @dataclasses.dataclass
    class Payload:
        w: torch.Tensor

    import numpy as np

    cache = Cache(tmp_path)
    with pytest.raises(TypeError, match=r"the models entry\['p'\].*Payload.*not plain data"):
        cache.save("models", "k", {"p": Payload(torch.ones(1))})
    with pytest.raises(TypeError, match="numpy.float64"):
        cache.save("factor_rows", "k", [{"value": np.float64(1.0)}])
    assert not cache.path("models", "k").exists()
    cache.save("models", "k", {"state_dict": {"w": torch.ones(1)}, "recipe": {"lr": 0.1, "name": "adam"},
                               "history": [{"loss": 1.0}], "bytes": b"x", "shape": (1, 2)})
    assert cache.load("models", "k")["shape"] == (1, 2)


def test_per_sample_files_are_plain_data_of_their_structure(tmp_path):
    """The reader of compare and analyze: a forged per_sample.pt never runs, another structure is named."""
    from overconf.core.errors import DataError
    from overconf.report.runs import read_per_sample

    ran = tmp_path / "code_ran"
    (tmp_path / "per_sample.pt").write_bytes(checksummed({"c": Forged(ran)}).partition(b"\n")[2])
    with pytest.raises(DataError, match="per_sample.pt' is damaged.*not loaded"):
        read_per_sample(tmp_path)
    assert not ran.exists()
    torch.save({"m/s/s0": {"model": "m", "setting": "s", "seed": 0, "members": {"max_score": [0.5]},
                           "sources": {}, "scores": {}, "thresholds": {}}}, tmp_path / "per_sample.pt")
    with pytest.raises(DataError, match="members: not a mapping of tensors"):
        read_per_sample(tmp_path)
