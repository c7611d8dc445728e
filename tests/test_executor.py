"""The Ray executor (overconf.runner.executor) on a local Ray runtime with 2 CPUs: a tiny study gives the
same rows as the local executor (shared and driver storage), a task whose worker dies is retried
with the same result, stored work is never redone, and the errors without ray / with bad values."""
from __future__ import annotations

import copy
import os
import sys

import pytest

from overconf.config import apply_overrides, parse_config
from overconf.core.errors import ConfigError
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict

from conftest import TINY

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def runtime():
    """One local Ray runtime (2 CPUs) for the module; workers take the driver's torch threads."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def raw_for(tmp, name: str, **extra) -> dict:
    raw = copy.deepcopy(TINY)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 8, "hidden": 32}}]
    raw["recipe"]["epochs"] = 2
    raw["cache_dir"] = str(tmp / f"cache-{name}")
    raw["output_dir"] = str(tmp / "runs")
    return raw | extra


def run(raw: dict) -> tuple[Study, list[dict]]:
    study = Study(config_from_dict(raw))
    result = study.run(report=False)
    return study, result.rows


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    _, rows = run(raw_for(tmp_path_factory.mktemp("local"), "local"))
    return rows


def same(rows: list[dict], expected: list[dict]) -> bool:
    """the same rows in the same order, values bit for bit (NaN where NaN), except the measured
    training times (``*_seconds`` rows: wall / CPU time of wherever the model trained)"""
    import pandas as pd

    rows, expected = ([r for r in x if not r["metric"].endswith("_seconds")] for x in (rows, expected))
    return len(rows) == len(expected) and pd.DataFrame(rows).equals(pd.DataFrame(expected))


@pytest.mark.parametrize("storage", ["shared", "driver"])
def test_a_tiny_study_on_ray_gives_the_local_rows_and_the_driver_only_loads(runtime, local_rows, tmp_path, storage):
    study, rows = run(raw_for(tmp_path, storage, executor="ray", ray={"storage": storage}))
    assert same(rows, local_rows)
    ex = study._ray_executor
    assert ex.submitted == 5  # target, shadow; their outputs on the splits; the target's on the sources
    cache = tmp_path / f"cache-{storage}"
    assert len(list((cache / "models").glob("*.pt"))) == 2
    assert len(list((cache / "outputs").glob("*.pt"))) == 2 * 3 + len(TINY["sources"])
    assert study.cache.misses == 0  # the driver trained and scored nothing itself
    locks = list(cache.rglob("*.lock"))
    assert (locks == []) == (storage == "driver")  # driver storage: workers never touched the cache folder


def test_stored_work_is_never_redone_and_a_local_rerun_reuses_it(runtime, local_rows, tmp_path):
    raw = raw_for(tmp_path, "again", executor="ray")
    run(raw | {"executor": "local", "sources": ["test"]})  # as if a driver was killed after some of the work
    study, rows = run(raw)
    assert study._ray_executor.submitted == 1 and same(rows, local_rows)  # only the outputs on the other sources
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache-again").rglob("*.pt")}
    study, rows = run(raw)
    assert study._ray_executor.submitted == 0 and same(rows, local_rows)
    _, rows = run(raw | {"executor": "local"})  # the executor is in no key
    assert same(rows, local_rows)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache-again").rglob("*.pt")} == before


@pytest.mark.parametrize("storage,at", [("shared", "start"), ("driver", "end")])
def test_a_task_whose_worker_dies_is_retried_with_an_unchanged_result(runtime, local_rows, tmp_path, monkeypatch,
                                                                       storage, at):
    markers = tmp_path / "crashed"
    monkeypatch.setenv("OVERCONF_RAY_CRASH_ONCE", str(markers))  # os._exit on the first attempt of the tasks
    monkeypatch.setenv("OVERCONF_RAY_CRASH_MATCH", "train target")  # that train the target,
    monkeypatch.setenv("OVERCONF_RAY_CRASH_AT", at)  # before the work, or after it (its private cache lost)
    study, rows = run(raw_for(tmp_path, "crash", executor="ray", ray={"storage": storage, "max_retries": 2}))
    assert [m.read_text() for m in markers.iterdir()] == ["train target salem_cnn baseline s0"]  # it died once
    assert same(rows, local_rows)


def test_without_retries_a_dead_worker_fails_the_run_and_a_rerun_completes(runtime, local_rows, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("OVERCONF_RAY_CRASH_ONCE", str(tmp_path / "crashed"))
    monkeypatch.setenv("OVERCONF_RAY_CRASH_MATCH", "train shadow")
    raw = raw_for(tmp_path, "fail", executor="ray", ray={"max_retries": 0})
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        run(raw)
    monkeypatch.delenv("OVERCONF_RAY_CRASH_ONCE")
    _, rows = run(raw)
    assert same(rows, local_rows)


def test_without_ray_executor_ray_is_one_error_naming_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    raw = raw_for(tmp_path, "none", executor="ray")
    with pytest.raises(ConfigError, match=r"pip install 'overconf\[ray\]'"):
        config_from_dict(raw)
    config_from_dict(raw | {"executor": "local"})  # the local executor never imports ray


def test_executor_values_and_cli_flags(tmp_path):
    from overconf.cli import build_parser, executor_sets

    def read_config(_, sets):
        return parse_config(apply_overrides(copy.deepcopy(TINY), sets))

    with pytest.raises(ConfigError, match="executor = 'dask' is not allowed; use one of: local, ray"):
        read_config(None, ["executor=dask"])
    with pytest.raises(ConfigError, match="ray.storage = 'nfs' is not allowed"):
        read_config(None, ["ray.storage=nfs"])
    args = build_parser().parse_args(["run", "x.yaml", "--executor", "ray", "--ray-address", "ray://head:10001"])
    cfg = read_config(None, ["executor=local"] + executor_sets(args))  # the flags win over the config
    assert cfg.executor == "ray" and cfg.ray.address == "ray://head:10001" and cfg.ray.storage == "shared"
    assert read_config(None, []).executor == "local"
    assert executor_sets(build_parser().parse_args(["run", "x.yaml"])) == []


def test_the_public_api_takes_the_executor_as_overrides(tmp_path):
    import overconf

    cfg = overconf.load(raw_for(tmp_path, "api"), executor="ray", ray__address="auto", ray__storage="driver")
    assert (cfg.executor, cfg.ray.address, cfg.ray.storage) == ("ray", "auto", "driver")
    assert "executor" in cfg.to_dict() and os.fspath(tmp_path)  # the resolved config.yaml records it


def test_an_unreachable_cluster_is_one_error_naming_the_address():
    from types import SimpleNamespace

    from overconf.config.executor import RayConfig
    from overconf.runner.executor.ray_tasks import ensure_runtime

    def init(**kw):
        raise ConnectionError("Could not find any running Ray instance.")

    fake = SimpleNamespace(is_initialized=lambda: False, init=init)
    with pytest.raises(ConfigError, match=r"ray.address = 'auto'.*ray start --head"):
        ensure_runtime(fake, SimpleNamespace(ray=RayConfig(address="auto")))
