"""One seed's jobs (overconf.runner.seed_jobs.SeedJobs): the executor and the analyses take it, never the Study."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from overconf.data import load_dataset, make_splits
from overconf.runner.executor import make_executor, prepare_seed
from overconf.runner.executor.items import OutputsItem, TrainItem
from overconf.runner.executor.plan import gan_items, training_items
from overconf.runner.run_analysis import contexts, run_analyses
from overconf.runner.seed_jobs import SeedJobs, StudyRun
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict


def raw_for(tmp_path) -> dict:
    return {"name": "seed_jobs", "seeds": [0, 1], "device": "cpu", "progress": False,
            "data": {"dataset": "digits", "eval_size": 50, "fit_size": 50,
                     "splits": {"target_train": 300, "shadow_train": 300, "calibration": 200,
                                "target_test": 200, "shadow_test": 200}},
            "models": [{"arch": "small_resnet", "params": {"width": 4}}],
            "recipe": {"epochs": 1, "batch_size": 64}, "sources": ["test", "gaussian"],
            "attacks": ["max_score"], "settings": {"baseline": {}, "ls": {"recipe": {"label_smoothing": 0.1}}},
            "report": {"figures": False, "tensorboard": False},
            "cache_dir": str(tmp_path / "checkpoints"), "output_dir": str(tmp_path / "runs")}


@pytest.fixture()
def study(tmp_path):
    return Study(config_from_dict(raw_for(tmp_path)), tmp_path / "run")


def seed_jobs(study: Study, seed: int) -> SeedJobs:
    ds = load_dataset("digits")
    return SeedJobs.build(study.cfg, ds, seed, study.cache, study.device, study.attacks, study.run_dir)


def test_seed_jobs_is_frozen_and_gives_the_studys_jobs_and_sources(study):
    jobs = seed_jobs(study, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        jobs.cfg = None
    assert jobs.seed == 1 and jobs.splits is jobs.context.splits and jobs.cache is study.cache
    # the Study's delegations (its state set by hand, as tests and notebooks do) give the same keys and sources
    study.dataset = jobs.dataset
    study.splits = make_splits(study.dataset, study.cfg.data.splits, 1)
    model = study.cfg.models[0]
    for setting in study.cfg.settings:
        for role, s in (("target", setting), ("shadow", jobs.shadow_setting(setting))):
            assert study.job(1, role, model, s).key == jobs.job(role, model, s).key
    assert jobs.job("target", model, study.cfg.settings[0]).key != seed_jobs(study, 0).job(
        "target", model, study.cfg.settings[0]).key  # another seed: other splits, other model
    ours, theirs = jobs.build_sources(), study.build_sources(1)
    assert list(ours) == list(theirs) == ["test", "gaussian"]
    assert all(torch.equal(ours[k].x, theirs[k].x) and torch.equal(ours[k].y, theirs[k].y) for k in ours)


def test_the_planner_and_the_local_executor_take_seed_jobs(study):
    jobs = seed_jobs(study, 0)
    for fn in (prepare_seed, make_executor, gan_items, training_items, contexts, run_analyses):
        assert "study" not in inspect.signature(fn).parameters, fn.__name__
    assert make_executor(study.cfg, study.cache, study.device) is None  # executor: local
    assert list(prepare_seed(jobs)) == ["test", "gaussian"]
    assert gan_items(jobs) == []
    items, targets = training_items(jobs)
    trains = [i for i in items if isinstance(i, TrainItem)]
    # baseline and label smoothing: a target and a shadow each (the shadow follows the setting's recipe)
    assert len(trains) == 4 and len([i for i in items if isinstance(i, OutputsItem)]) == 4
    model = study.cfg.models[0]
    expected = {jobs.job(r, model, s if r == "target" else jobs.shadow_setting(s)).key
                for s in study.cfg.settings for r in ("target", "shadow")}
    assert {i.job.key for i in trains} == expected
    assert set(targets) == {jobs.job("target", model, s).key for s in study.cfg.settings}


def test_analysis_contexts_leave_the_study_untouched(study):
    run = StudyRun.from_config(study.cfg, study.run_dir, study.cache)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.cfg = None
    first = [(c.seed, c.model, c.setting) for c in contexts(run)]
    assert first == [(s, "small_resnet", n) for s in (0, 1) for n in ("baseline", "ls")]
    ctx = next(contexts(study))  # a Study has the same attributes; it is read, never changed
    assert (study.seed, study.splits, study.context, study.dataset) == (None, None, None, None)
    assert ctx.jobs["target"].key == seed_jobs(study, 0).job("target", study.cfg.models[0],
                                                             study.cfg.settings[0]).key
