"""Content-keyed, atomic, corruption-checked cache for models, outputs and generators.

A key is the SHA-256 of a canonical JSON rendering of everything that determines the object
(tensors enter by the hash of their bytes). Files are written to a temporary name and renamed,
so a killed run never leaves a half-written entry; each file starts with the SHA-256 of its
payload, so a damaged entry is detected, removed and rebuilt. An entry holds plain data only
(tensors, numbers, strings, lists, dicts: :mod:`overconf.core.plain_data`), loaded with
``torch.load(weights_only=True)``, so a forged entry (a pickle that would run code) is refused,
never executed; it records the kind and key it was stored under, so a file moved or copied to
another key is refused; a caller may check the structure it needs (``valid``). Each refused
entry is removed and rebuilt like a damaged one. A write that fails for lack of space
or permission raises one :class:`~overconf.core.errors.StorageError` naming the folder; what is already
stored stays. :meth:`Cache.lock` is a per-key file lock (``filelock``): runs sharing a cache wait
for each other's "load or train and store" instead of training the same model twice.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from overconf.core.errors import StorageError
from overconf.core.plain_data import check_plain, load_plain, plain_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")

STORAGE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOTDIR, errno.EDQUOT, errno.EFBIG}
"""OSError numbers that mean "this folder cannot be written" (full, read-only, no permission)."""


def storage_error(e: OSError, folder: str | Path, what: str, fix: str) -> StorageError:
    """One clear error for a failed write to ``folder``: what it is, why, and how to fix it."""
    reason = e.strerror or type(e).__name__
    where = getattr(e, "filename", None) or folder
    if e.errno in (errno.ENAMETOOLONG, errno.ELOOP):  # not a full disk: a path problem, named as such
        problem = ("a file or folder name in it is too long (at most 255 bytes per name)"
                   if e.errno == errno.ENAMETOOLONG else "it runs through a loop of symbolic links")
        return StorageError(f"cannot write to the {what} '{folder}': {problem} ({reason}: {where}); {fix}")
    return StorageError(f"cannot write to the {what} '{folder}' ({reason}: {getattr(e, 'filename', None) or folder}); "
                        f"free space on its disk or make it writable, or {fix}")


def check_writable(folder: str | Path, what: str, fix: str) -> None:
    """Create ``folder`` and a probe file in it (one block, fsync'ed), then remove the probe: a
    read-only, full or forbidden folder fails here, before anything is computed."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise StorageError(f"the {what} '{folder}' is a symbolic link to '{os.readlink(folder)}', which does not "
                           f"exist; create that folder, or {fix}")
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"the {what} '{folder}' is a file, not a folder; move the file away or {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".overconf-probe-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        finally:
            Path(probe).unlink(missing_ok=True)
    except OSError as e:
        raise storage_error(e, folder, what, fix) from e


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def canonical(obj: Any) -> Any:
    """A JSON-able rendering of ``obj`` that is stable across runs and machines."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return {"tensor": tensor_digest(obj)}
    if isinstance(obj, np.ndarray):
        return {"tensor": tensor_digest(torch.from_numpy(np.ascontiguousarray(obj)))}
    if isinstance(obj, float):
        return repr(obj)  # exact and stable, including nan/inf
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot build a content key from {type(obj).__name__}")


def set_values(obj: Any, always: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of dataclass ``obj`` that enter a cache key: every field named in ``always``,
    every field without a default, and every other field whose value differs from its default.

    ``always`` lists the fields a key held when it was introduced (then all of them, by
    ``dataclasses.asdict``), so those keys stay unchanged; a field added later with a default
    enters only once it is set, so adding it keeps every cached entry valid."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            out[f.name] = value
            continue
        if f.name in always or value != default:
            out[f.name] = value
    return out


def content_key(obj: Any, length: int = 24) -> str:
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


ENTRY_FORMAT = "overconf-cache-entry/2"
"""the envelope of every entry: {"format", "kind", "key", "payload"}"""


def _holds(valid: Callable[[Any], bool], payload: Any) -> bool:
    try:
        return bool(valid(payload))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError):
        return False


class Cache:
    """``root/kind/key.pt`` entries holding plain-data payloads (see the module's docstring)."""

    def __init__(self, root: str | Path, *, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def load(self, kind: str, key: str, valid: Callable[[Any], bool] | None = None) -> Any | None:
        """The stored payload, or None when absent or refused: damaged (checksum), not plain data
        (forged or of another overconf version: never unpickled beyond plain data), stored under
        another kind or key, or rejected by ``valid(payload)`` (the structure the caller needs;
        a KeyError, TypeError, ... it raises counts as False). A refused entry is removed."""
        if not self.enabled:
            return None
        path = self.path(kind, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        head, _, payload = blob.partition(b"\n")
        if head.decode(errors="replace") != hashlib.sha256(payload).hexdigest():
            return self._refuse(path, "is damaged (checksum mismatch)")
        try:
            entry = load_plain(payload)
        except Exception as e:  # UnpicklingError (code or classes), RuntimeError, EOFError, ...
            reason = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
            return self._refuse(path, f"holds more than plain tensors, numbers and strings, so it was not loaded "
                                      f"(stored by an older overconf, or forged; {reason})")
        if not (isinstance(entry, dict) and entry.get("format") == ENTRY_FORMAT):
            return self._refuse(path, "does not record the key it was stored under (stored by an older overconf)")
        if (entry.get("kind"), entry.get("key")) != (kind, key):
            return self._refuse(path, f"was stored under {entry.get('kind')}/{entry.get('key')}, not under this key "
                                      f"(moved or copied by hand)")
        if valid is not None and not _holds(valid, entry.get("payload")):
            return self._refuse(path, f"does not have the structure of a {kind} entry")
        return entry.get("payload")

    def _refuse(self, path: Path, why: str) -> None:
        log.warning("cache entry %s %s; removing it and rebuilding it", path, why)
        path.unlink(missing_ok=True)
        return None

    def save(self, kind: str, key: str, payload: Any) -> Path:
        """Store plain-data ``payload`` (TypeError otherwise) with its kind and key."""
        path = self.path(kind, key)
        if not self.enabled:
            return path
        check_plain(payload, f"the {kind} entry")  # a TypeError naming the value that could not be read back
        data = plain_bytes({"format": ENTRY_FORMAT, "kind": kind, "key": key, "payload": payload})
        try:
            atomic_write_bytes(path, hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
        except OSError as e:
            if e.errno not in STORAGE_ERRNOS:
                raise
            raise storage_error(e, self.root, "cache folder",
                                "choose another with --set cache_dir=DIR (entries already stored are kept; "
                                "a re-run resumes from them)") from e
        return path

    def check_writable(self) -> None:
        """Fail now, before any training, if entries could not be stored (see :func:`check_writable`)."""
        if self.enabled:
            check_writable(self.root, "cache folder", "choose another with --set cache_dir=DIR")

    @contextlib.contextmanager
    def lock(self, kind: str, key: str, what: str | None = None):
        """Hold the file lock of entry ``kind/key`` (``root/kind/key.lock``): wrap "load, else
        compute and store" in it and load again inside, so that of several runs (processes or
        threads) sharing this cache one computes the entry and the others wait and reuse it."""
        if not self.enabled:
            yield
            return
        import filelock

        path = self.path(kind, key).with_suffix(".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(str(path))
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                log.info("waiting for another run that computes %s (%s)", what or f"{kind}/{key}", path)
                lock.acquire()
        except OSError as e:
            raise storage_error(e, self.root, "cache folder", "choose another with --set cache_dir=DIR") from e
        try:
            yield
        finally:
            lock.release()

    def get_or_create(self, kind: str, key: str, create: Callable[[], T],
                      valid: Callable[[Any], bool] | None = None) -> T:
        found = self.load(kind, key, valid)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        value = create()
        self.save(kind, key, value)
        return value

    def discard(self, kind: str, key: str) -> None:
        self.path(kind, key).unlink(missing_ok=True)

    def partial_saver(self, key: str, every: float) -> Callable[[Callable[[], Any]], None]:
        """A function that stores ``payload()`` as the resumable ``partial`` entry of ``key`` at
        most once per ``every`` seconds (the clock starts now); other calls build nothing."""
        last = time.monotonic()

        def save(payload: Callable[[], Any]) -> None:
            nonlocal last
            if time.monotonic() - last >= every:
                self.save("partial", key, payload())
                last = time.monotonic()

        return save


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
