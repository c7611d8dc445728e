"""The Ray executor's planner (overconf.runner.executor.plan), without Ray: after a local run of a tiny
study with every kind of work item (GAN source, LiRA's reference models, a training-time defense,
a release-time defense sharing the baseline's models), every planned item is found done in the
cache (the planner asks for exactly the keys the study stores), items are unique, and every item
survives the pickling a Ray task argument goes through, with its keys unchanged."""
from __future__ import annotations

import copy
import pickle

import pytest

from overconf.runner.executor.items import GanItem, OutputsItem, ReferenceItem, TrainItem
from overconf.runner.executor.plan import gan_items, source_items, training_items
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict

from conftest import TINY

PLAN_TINY = {
    "models": [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}],
    "recipe": {"epochs": 1, "lr": 0.003, "batch_size": 64},
    "sources": ["test", "gaussian", "fake"],
    "attacks": ["max_score", "lira"],
    "reference": {"num_models": 4, "population": 100},
    "gan": {"params": {"width": 4, "latent_dim": 8}, "train_images": 256, "steps": 2, "batch_size": 16,
            "fid": {"enabled": False}},
    "settings": {"baseline": {}, "rounded": {"defense": {"name": "rounding", "d": 1}},
                 "dp": {"defense": {"name": "dp_sgd", "noise_multiplier": 5.0, "max_grad_norm": 1.0}}},
}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    raw = copy.deepcopy(TINY) | copy.deepcopy(PLAN_TINY)
    raw["cache_dir"], raw["output_dir"] = str(tmp / "checkpoints"), str(tmp / "runs")
    study = Study(config_from_dict(raw), tmp / "run")
    study.run(report=False)  # local: stores every model, generator and output; seed 0's context stays set
    jobs = study.seed_jobs(0)  # overconf.runner.seed_jobs.SeedJobs of seed 0 (the planner's input)
    gans = gan_items(jobs)
    trainings, targets = training_items(jobs)
    sources = study.build_sources(0)
    return study, gans + trainings + source_items(targets, sources)


def test_every_planned_item_is_what_a_local_run_stored(planned):
    study, items = planned
    kinds = {t: [i for i in items if isinstance(i, t)] for t in (GanItem, TrainItem, OutputsItem, ReferenceItem)}
    # 1 generator; target + shadow of baseline and dp (rounded shares the baseline's); their split outputs
    # and the 2 targets' source outputs; 4 reference models (sequential on CPU) per attacker recipe
    assert {t.__name__: len(v) for t, v in kinds.items()} == {"GanItem": 1, "TrainItem": 4, "OutputsItem": 6,
                                                                "ReferenceItem": 8}
    assert len({i.id for i in items}) == len(items)
    missing = [i.label for i in items if not i.done(study.cache)]
    assert not missing, missing
    dp = [i for i in kinds[TrainItem] if " dp " in i.label]
    assert len(dp) == 2 and all(i.job.hooks is not None for i in dp)  # DP-SGD trainings carry their hooks


def test_every_item_pickles_with_its_keys(planned):
    ray = pytest.importorskip("ray")
    _, items = planned
    for item in items:
        back = ray.cloudpickle.loads(ray.cloudpickle.dumps(item))
        assert back.stores == item.stores and back.label == item.label
    pickle.dumps(items[0])
