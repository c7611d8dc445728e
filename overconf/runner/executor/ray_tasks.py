"""The Ray executor: a seed's work items as Ray tasks; the study then finds everything in the cache.

Each item (overconf.runner.executor.items) becomes one task of :func:`overconf.runner.executor.items.execute`
with declared resources (``ray.num_cpus``; on CUDA ``ray.num_gpus``, by default 0.25 of a GPU for
small models and 1 otherwise) and ``max_retries`` (a task whose worker dies runs again; a Python
exception is not retried and is raised in the driver). Dependencies (a model before its outputs)
are Ray object references, so Ray orders them. Storage:

- ``shared`` (default): workers write the cache directory themselves, with the cache's atomic
  writes and per-key file locks, exactly as concurrent local runs do; needs a filesystem every
  node mounts (NFS, a single machine). A killed driver loses nothing a task finished.
- ``driver``: a task computes in a private temporary cache and returns the bytes of the entries
  it stored (checksummed); the driver writes them atomically as the tasks finish. Entries a task
  reads (a model for its outputs) travel to it from the driver's cache or from the task that
  computed them. For clusters without a shared filesystem.

Work already stored is never submitted. One aggregate progress bar (tqdm) counts the seed's
tasks; each finished task logs a line (what, seconds, host, pid).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import torch

from overconf.core.errors import ConfigError
from overconf.runner.executor.items import WorkerSetup, WorkItem, entry_name, execute, store_entries

log = logging.getLogger("overconf")

INSTALL = "pip install 'overconf[ray]'"
CRASH_ENV = "OVERCONF_RAY_CRASH_ONCE"
"""tests only: a folder; the first attempt of every task kills its worker (see WorkerSetup.crash_dir);
``OVERCONF_RAY_CRASH_MATCH``: only of the tasks whose label holds this text;
``OVERCONF_RAY_CRASH_AT``: start (before the work) | end (after it, before returning)"""


def import_ray():
    """The ray module, or one clear error naming the install command."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"executor: ray needs the Ray package, which is not installed ({e}); install it with "
                          f"{INSTALL}, or use executor: local") from None
    return ray


def ensure_runtime(ray, cfg) -> None:
    """Connect to ``ray.address`` or start a local runtime, unless this process is connected already."""
    if ray.is_initialized():
        return
    kw = {"address": cfg.ray.address} if cfg.ray.address else {"num_cpus": cfg.ray.local_cpus}
    try:
        info = ray.init(**kw, log_to_driver=True)
    except (ConnectionError, ValueError) as e:  # ValueError: "Invalid address format" (e.g. from RAY_ADDRESS)
        raise ConfigError(f"cannot connect to the Ray cluster at ray.address = '{cfg.ray.address}' ({e}); start it "
                          f"(ray start --head) or fix --ray-address / ray.address, or leave it empty for a local "
                          f"Ray runtime") from None
    url = getattr(info, "dashboard_url", None)
    log.info("ray: connected to %s%s", cfg.ray.address or "a local runtime",
             f"; dashboard: http://{url}" if url else "")


class RayExecutor:
    """Runs work items of a study as Ray tasks (one instance per study run): ``cfg`` (its ``ray``
    section and ``progress``), the driver's ``cache`` and ``device``."""

    def __init__(self, cfg, cache, device):
        self.ray = ray = import_ray()
        self.cfg, self.cache = cfg, cache
        ensure_runtime(ray, cfg)
        self.remote = ray.remote(execute)
        cuda = device.type == "cuda"
        crash = os.environ.get(CRASH_ENV)
        self.setup = WorkerSetup(str(Path(cache.root).resolve()), cfg.ray.storage,
                                 cfg.ray.threads or torch.get_num_threads(), "cuda" if cuda else "cpu",
                                 str(Path(crash).resolve()) if crash else None,
                                 os.environ.get(CRASH_ENV.replace("ONCE", "MATCH"), ""),
                                 os.environ.get(CRASH_ENV.replace("ONCE", "AT"), "start"))
        self.cuda = cuda
        self.refs: dict[tuple, object] = {}
        """item id -> the object reference of its task (submitted in this run)"""
        self.pending: dict[object, WorkItem] = {}
        self.submitted = 0
        self.bar = None

    # ------------------------------------------------------------------ submitting
    def options(self, item: WorkItem) -> dict:
        r = self.cfg.ray
        gpus = 0.0
        if self.cuda:
            gpus = r.num_gpus if r.num_gpus is not None else (0.25 if item.small else 1.0)
        return {"num_cpus": r.num_cpus, "num_gpus": gpus, "max_retries": r.max_retries, "retry_exceptions": False,
                "name": item.label[:100]}

    def submit(self, items: list[WorkItem]) -> int:
        """Submit the items the cache lacks (after their dependencies); returns how many."""
        cache = self.cache
        new = [i for i in items if i.id not in self.refs and not i.done(cache)]
        for item in new:
            deps = [self.dep_ref(d) for d in item.deps] if self.setup.storage == "driver" else \
                [self.refs[d.id] for d in item.deps if d.id in self.refs]
            ref = self.remote.options(**self.options(item)).remote(dataclasses.replace(item, deps=[]), self.setup,
                                                                    *deps)
            self.refs[item.id] = ref
            self.pending[ref] = item
        self.submitted += len(new)
        if new and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(new), desc="ray tasks", unit="task", disable=not self.cfg.progress)
        elif new:
            self.bar.total += len(new)
            self.bar.refresh()
        return len(new)

    def dep_ref(self, dep: WorkItem):
        """driver storage: the entries of a dependency, from its task or from the driver's cache"""
        if dep.id in self.refs:
            return self.refs[dep.id]
        cache = self.cache
        blobs = {entry_name(e): cache.path(*e).read_bytes() for e in dep.stores if cache.path(*e).exists()}
        ref = self.ray.put({"entries": blobs})
        self.refs[dep.id] = ref
        return ref

    # ------------------------------------------------------------------ waiting
    def wait(self, items: list[WorkItem] | None = None) -> None:
        """Process finished tasks until every task of ``items`` (None: every pending task) is done."""
        ray = self.ray
        wanted = None if items is None else {self.refs[i.id] for i in items if i.id in self.refs}
        while self.pending and (wanted is None or wanted & self.pending.keys()):
            ready, _ = ray.wait(list(self.pending), num_returns=1)
            for ref in ready:
                item = self.pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the task raised: the original error, in the driver
                    cause = getattr(e, "cause", None)
                    log.error("ray task failed: %s", item.label)
                    raise (cause if isinstance(cause, BaseException) else e) from None
                if result["entries"]:
                    store_entries(self.cache, result["entries"])
                log.info("ray task done: %s (%.1f s on %s, pid %d)", item.label, result["seconds"], result["host"],
                         result["pid"])
                if self.bar is not None:
                    self.bar.update(1)
        if not self.pending and self.bar is not None:
            self.bar.close()
            self.bar = None

    def cancel(self) -> None:
        for ref in list(self.pending):
            self.ray.cancel(ref, force=True)
        self.pending.clear()


def timed_empty_tasks(n: int) -> float:
    """Seconds per empty task on the current runtime (scripts/bench.py: scheduling overhead)."""
    ray = import_ray()
    noop = ray.remote(num_cpus=1)(_noop)
    ray.get([noop.remote() for _ in range(4)])  # workers started
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(n)])
    return (time.perf_counter() - start) / n


def _noop() -> None:
    return None
