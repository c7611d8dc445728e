"""The ``executor`` key and the ``ray:`` section (overconf/runner/executor/): where a study's trainings
and outputs run. Neither enters a cache key; torch-free like the rest of overconf.config."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .convert import check as _check

EXECUTORS = ("local", "ray")
RAY_STORAGE = ("shared", "driver")


@dataclass
class RayConfig:
    """The Ray executor (``executor: ray``, overconf/runner/executor/): where its tasks run and store."""

    address: str | None = None
    """a running cluster (``ray://host:10001``, ``auto``); null: start a local Ray runtime"""
    storage: str = "shared"
    """shared: workers write the cache directory (a filesystem every node sees) | driver: workers
    return the entries they computed and the driver stores them (no shared filesystem needed)"""
    num_cpus: float = 1
    """CPUs declared per task"""
    num_gpus: float | None = None
    """GPUs declared per task when the study's device is CUDA; null: 0.25 for small models
    (salem_cnn, small_resnet), else 1"""
    threads: int | None = None
    """torch threads in a worker; null: the driver's (same threads, same floating-point results)"""
    max_retries: int = 3
    """times a task whose worker died is run again"""
    local_cpus: int | None = None
    """CPUs of a local runtime (address null); null: every CPU of the machine"""

    def __post_init__(self):
        _check(self.address is None or is_ray_address(self.address),
               f"ray.address = '{self.address}' is not a Ray address; use auto, HOST:PORT (the head node's port, "
               f"e.g. 10.0.0.5:6379) or ray://HOST:PORT (Ray Client, port 10001), or leave it empty (null) for a "
               f"local Ray runtime")
        _check(self.storage in RAY_STORAGE, f"ray.storage = '{self.storage}' is not allowed; use one of: "
               f"{', '.join(RAY_STORAGE)}")
        _check(self.num_cpus > 0, f"ray.num_cpus must be > 0, got {self.num_cpus}")
        _check(self.num_gpus is None or self.num_gpus >= 0, f"ray.num_gpus must be >= 0, got {self.num_gpus}")
        _check(self.threads is None or self.threads >= 1, f"ray.threads must be >= 1, got {self.threads}")
        _check(self.max_retries >= 0, f"ray.max_retries must be >= 0, got {self.max_retries}")
        _check(self.local_cpus is None or self.local_cpus >= 1, f"ray.local_cpus must be >= 1, got {self.local_cpus}")


def is_ray_address(address: str) -> bool:
    """What ``ray.init(address=...)`` accepts: ``auto``, ``local``, ``SCHEME://...`` (``ray://``
    Ray Client) or ``HOST:PORT``."""
    if address in ("auto", "local") or re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", address):
        return True
    host, _, port = address.rpartition(":")
    return bool(host) and " " not in host and port.isdigit() and 0 < int(port) < 65536


def check_executor_name(name: str) -> None:
    _check(name in EXECUTORS, f"executor = '{name}' is not allowed; use one of: {', '.join(EXECUTORS)}")
