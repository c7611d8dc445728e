"""Work items of a study: what an executor can run apart from the driver, and the worker's entry point.

An item is a self-contained, picklable description of one piece of work whose result is a set
of content-keyed cache entries (``stores``): a target or shadow training (:class:`TrainItem`),
a model's outputs on input sets (:class:`OutputsItem`), reference models (:class:`ReferenceItem`),
a generator (:class:`GanItem`). It runs the same cached, locked, resumable code the driver runs
(``load_or_train``, ``cached_outputs``, ``ReferenceSet.state_dicts``, ``load_or_train_generator``),
so an entry a worker stores is bit for bit the one the driver would store, and the study finds it.
:func:`execute` runs an item in a worker, with the cache either shared (the worker writes the
cache directory) or private (a temporary cache; the worker returns the new entries' bytes and
the driver stores them).
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from overconf.core.cache import Cache, atomic_write_bytes
from overconf.gan.training import GanJob, load_or_train_generator
from overconf.signals.outputs import cached_outputs, outputs_key
from overconf.reference.manager import ReferenceSet
from overconf.training.jobs import ClassifierJob, load_or_train

SMALL_ARCHS = ("salem_cnn", "small_resnet")
"""architectures that get a fraction of a GPU (``ray.num_gpus: null``)"""

Entry = tuple[str, str]
"""(kind, key) of a cache entry: the file ``cache_root/kind/key.pt``"""


@dataclass
class WorkItem:
    label: str
    """what the progress log shows"""
    deps: list["WorkItem"] = field(default_factory=list, repr=False)
    """items whose entries this one reads (run first; their entries are shipped to a private cache)"""
    arch: str = ""

    @property
    def stores(self) -> list[Entry]:
        raise NotImplementedError

    @property
    def needs(self) -> list[Entry]:
        """entries this item reads (the models of an outputs item)"""
        return [e for d in self.deps for e in d.stores]

    @property
    def id(self) -> tuple[Entry, ...]:
        return tuple(sorted(self.stores))

    @property
    def small(self) -> bool:
        return self.arch in SMALL_ARCHS

    def done(self, cache: Cache) -> bool:
        """every entry it stores exists: the work is never redone"""
        return all(cache.path(*e).exists() for e in self.stores)

    def run(self, cache: Cache, device: torch.device) -> None:
        raise NotImplementedError


@dataclass
class TrainItem(WorkItem):
    """A target or shadow classifier (training-time defenses included: ``job.hooks``)."""

    job: ClassifierJob | None = None

    @property
    def stores(self) -> list[Entry]:
        return [("models", self.job.key)]

    def run(self, cache: Cache, device: torch.device) -> None:
        load_or_train(self.job, cache, device, progress=False)


@dataclass
class OutputsItem(WorkItem):
    """The outputs (logits, features) of a trained classifier on input sets (model inputs, labels)."""

    job: ClassifierJob | None = None
    sets: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)

    @property
    def stores(self) -> list[Entry]:
        key = self.job.key
        return [("outputs", outputs_key(key, x, y)) for x, y in self.sets]

    def run(self, cache: Cache, device: torch.device) -> None:
        trained = load_or_train(self.job, cache, device, progress=False)
        for x, y in self.sets:
            cached_outputs(cache, trained.key, trained.model, x, y, device)


@dataclass
class ReferenceItem(WorkItem):
    """Reference models ``ks`` of a reference set (one model when sequential, a group when batched)."""

    refs: ReferenceSet | None = None
    ks: list[int] = field(default_factory=list)

    @property
    def stores(self) -> list[Entry]:
        return [("models", self.refs.model_keys[k]) for k in self.ks]

    def run(self, cache: Cache, device: torch.device) -> None:
        self.refs.state_dicts(self.ks, cache, device)


@dataclass
class GanItem(WorkItem):
    """A study seed's generator (``fake`` / ``fake_conditional`` sources); no TensorBoard log."""

    job: GanJob | None = None

    @property
    def stores(self) -> list[Entry]:
        return [("generators", self.job.key)]

    def run(self, cache: Cache, device: torch.device) -> None:
        load_or_train_generator(self.job, cache, device, progress=False)


@dataclass(frozen=True)
class WorkerSetup:
    """What every task of a study shares."""

    cache_root: str
    """absolute path of the cache directory (storage shared)"""
    storage: str
    """shared | driver"""
    threads: int
    """torch.set_num_threads in the worker: the driver's count, so results are identical"""
    device: str
    """cpu | cuda (the GPU Ray assigned to the task)"""
    crash_dir: str | None = None
    """tests only (``OVERCONF_RAY_CRASH_ONCE``): the first attempt of every task (whose label holds
    ``crash_match``) ends its worker with os._exit, leaving a marker file here, so that the retry runs"""
    crash_match: str = ""
    crash_at: str = "start"
    """start: before the work | end: after it, before the task returns (its entries in a shared cache
    are stored, in a private one lost)"""


def entry_name(entry: Entry) -> str:
    return f"{entry[0]}/{entry[1]}.pt"


def execute(item: WorkItem, setup: WorkerSetup, *deps: dict) -> dict:
    """Run ``item`` in a worker. ``deps``: the results of the items it needs (``{"entries": {name:
    bytes}}``, shipped into a private cache). Returns the entries it stored (private cache only),
    the seconds it took, and where it ran."""
    torch.set_num_threads(setup.threads)
    crash_once(setup, item, "start")
    start = time.perf_counter()
    device = torch.device(setup.device)
    entries: dict[str, bytes] = {}
    if setup.storage == "shared":
        item.run(Cache(setup.cache_root), device)
        crash_once(setup, item, "end")
    else:
        with tempfile.TemporaryDirectory(prefix="overconf-task-") as tmp:
            shipped = set()
            for d in deps:
                for name, blob in d["entries"].items():
                    atomic_write_bytes(Path(tmp) / name, blob)
                    shipped.add(name)
            item.run(Cache(tmp), device)
            crash_once(setup, item, "end")
            for e in item.stores:
                name = entry_name(e)
                if name not in shipped and (Path(tmp) / name).exists():
                    entries[name] = (Path(tmp) / name).read_bytes()
    return {"entries": entries, "seconds": time.perf_counter() - start, "pid": os.getpid(),
            "host": socket.gethostname()}


def crash_once(setup: WorkerSetup, item: WorkItem, where: str) -> None:
    """tests only: end the worker (os._exit) on the item's first attempt, at ``setup.crash_at``"""
    if setup.crash_dir is None or setup.crash_match not in item.label or setup.crash_at != where:
        return
    marker = Path(setup.crash_dir) / hashlib.sha256(item.label.encode()).hexdigest()[:16]
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(item.label)
        os._exit(1)  # the worker dies: Ray retries the task (max_retries)


def store_entries(cache: Cache, entries: dict[str, bytes]) -> None:
    """The driver stores what a worker returned (already checksummed), atomically, unless present."""
    for name, blob in entries.items():
        path = Path(cache.root) / name
        if not path.exists():
            atomic_write_bytes(path, blob)
