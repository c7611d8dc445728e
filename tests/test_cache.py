import torch

from overconf.core.cache import Cache, content_key


def test_content_key_is_stable_and_sensitive():
    a = {"x": torch.arange(5), "lr": 0.1, "name": "m"}
    assert content_key(a) == content_key({"name": "m", "lr": 0.1, "x": torch.arange(5)})
    assert content_key(a) != content_key({**a, "lr": 0.10000001})
    assert content_key(a) != content_key({**a, "x": torch.arange(5).float()})


def test_cache_round_trip_and_corruption_is_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    cache.save("models", "k", {"w": torch.ones(3)})
    assert torch.equal(cache.load("models", "k")["w"], torch.ones(3))
    path = cache.path("models", "k")
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF  # flip a payload bit
    path.write_bytes(bytes(blob))
    assert cache.load("models", "k") is None
    assert not path.exists()
    calls = []
    value = cache.get_or_create("models", "k", lambda: calls.append(1) or {"w": torch.zeros(2)})
    assert calls == [1] and torch.equal(value["w"], torch.zeros(2))
    assert torch.equal(cache.get_or_create("models", "k", lambda: 1 / 0)["w"], torch.zeros(2))


def test_truncated_entry_is_detected(tmp_path):
    cache = Cache(tmp_path)
    cache.save("outputs", "k", torch.randn(100))
    path = cache.path("outputs", "k")
    path.write_bytes(path.read_bytes()[:50])
    assert cache.load("outputs", "k") is None


def test_writes_leave_no_temporary_files(tmp_path):
    cache = Cache(tmp_path)
    for i in range(3):
        cache.save("outputs", f"k{i}", torch.randn(10))
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["k0.pt", "k1.pt", "k2.pt"]


def test_a_failed_write_raises_one_clear_error_and_keeps_what_is_stored(tmp_path, monkeypatch):
    import errno

    import pytest

    import overconf.core.cache as cache_mod
    from overconf.core.errors import StorageError

    cache = Cache(tmp_path / "ckpt")
    cache.save("models", "k0", {"w": torch.ones(3)})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "fsync", full)
    with pytest.raises(StorageError, match=r"cache folder '.*ckpt'.*No space left.*cache_dir"):
        cache.save("models", "k1", {"w": torch.zeros(3)})
    with pytest.raises(StorageError, match="cache_dir"):
        cache.check_writable()  # the probe before any training sees the same
    monkeypatch.undo()
    assert torch.equal(cache.load("models", "k0")["w"], torch.ones(3))  # stored entries stay
    assert cache.load("models", "k1") is None
    assert sorted(p.name for p in (tmp_path / "ckpt" / "models").iterdir()) == ["k0.pt"]  # no temporary left


def test_cache_lock_excludes_other_holders(tmp_path):
    import threading
    import time

    cache = Cache(tmp_path)
    inside, order = threading.Event(), []

    def first():
        with cache.lock("models", "k"):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(timeout=10)
    with cache.lock("models", "k"):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]
