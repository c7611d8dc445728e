"""DP-SGD (overconf.defenses.dp_sgd) against plain training and against opacus."""
import copy

import pytest
import torch

from overconf.defenses import DEFENSES
from overconf.defenses.dp_sgd import DPSGDHooks, epsilon_reached
from overconf.core.errors import ConfigError
from overconf.training import TrainingHooks, train_classifier
from overconf.training.hooks import Batch
from tests.test_training import make_job

CPU = torch.device("cpu")


def setup(batch=32):
    job = make_job(dropout=0.0)
    model = job.build().train()
    x, y = job.inputs()[:batch], job.labels[:batch]
    return job, model, x, y


def plain_grads(model, loss_fn, x, y):
    m = copy.deepcopy(model)
    loss_fn(m(x), y).backward()
    return [p.grad.clone() for p in m.parameters()]


def dp_grads(model, hooks, recipe, x, y):
    m = copy.deepcopy(model)
    loss_fn = hooks.loss(recipe)
    hooks.expected_batch_size = len(x)
    params = list(m.parameters())
    hooks.gradient(loss_fn(m(x), y), params, Batch(x, y, torch.arange(len(x)), m))
    return [p.grad.clone() for p in params], loss_fn


def opacus_update(model, loss_fn, x, y, clip, expected_batch_size):
    """Opacus' clipped, noise-free update of one SGD step at lr 1 (= the privatised gradient):
    GradSampleModule + DPOptimizer on a copy of ``model``."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    m = GradSampleModule(copy.deepcopy(model))
    opt = DPOptimizer(torch.optim.SGD(m.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=clip,
                      expected_batch_size=expected_batch_size, loss_reduction="mean")
    opt.zero_grad()
    loss_fn(m(x), y).backward()
    before = [p.detach().clone() for p in m.parameters()]
    opt.step()
    return [b - p.detach() for b, p in zip(before, m.parameters())]


def test_no_noise_large_clip_equals_plain_step():
    job, model, x, y = setup()
    grads, loss_fn = dp_grads(model, DPSGDHooks(0.0, 1e6), job.recipe, x, y)
    for g, h in zip(grads, plain_grads(model, loss_fn, x, y)):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)


def test_clipped_update_equals_opacus():
    job, model, x, y = setup()
    clip = 0.05
    grads, loss_fn = dp_grads(model, DPSGDHooks(0.0, clip), job.recipe, x, y)
    ref = opacus_update(model, loss_fn, x, y, clip, len(x))
    plain = plain_grads(model, loss_fn, x, y)
    assert any(not torch.allclose(g, h, atol=1e-6) for g, h in zip(grads, plain))  # clipping was active
    for g, h in zip(grads, ref):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_epsilon_equals_opacus_accountant(accountant):
    from opacus.accountants import PRVAccountant, RDPAccountant
    q, sigma, steps, delta = 32 / 960, 1.3, 90, 1e-3
    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    assert epsilon_reached(sigma, q, steps, delta, accountant) == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-6)
    d = DEFENSES["dp_sgd"](noise_multiplier=sigma, accountant=accountant, delta=delta)
    assert d.describe(960, 32, 3)["epsilon"] == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-6)


def test_target_epsilon_gives_noise_reaching_it():
    d = DEFENSES["dp_sgd"](epsilon=4.0)
    info = d.describe(960, 32, 3)
    assert info["noise_multiplier"] > 0 and info["epsilon"] == pytest.approx(4.0, abs=0.05)
    assert info["delta"] == 1e-5  # the default delta, well below 1/n (issue 21), always reported with epsilon
    q, steps = 32 / 960, 3 * (960 // 32)
    assert info["epsilon_delta_1_over_n"] == pytest.approx(epsilon_reached(info["noise_multiplier"], q, steps, 1 / 960))
    assert info["epsilon_delta_1_over_n"] < info["epsilon"]  # a weaker delta buys a smaller epsilon
    assert info["dp_sample_rate"] == q and info["dp_steps"] == steps
    assert DEFENSES["dp_sgd"].kind == "training"


def test_dp_training_runs_reproducibly_with_poisson_batches():
    job = make_job(dropout=0.0, epochs=2)
    runs = []
    for _ in range(2):
        model = job.build()
        hooks = DPSGDHooks(1.0, 1.0)
        h = train_classifier(model, job.inputs(), job.labels, job.recipe, seed=0, device=CPU, progress=False,
                             hooks=hooks)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert len(h) == 2
    assert torch.equal(*runs)


def test_bad_parameters_and_batchnorm_are_clear_errors():
    with pytest.raises(ConfigError, match="exactly one"):
        DEFENSES["dp_sgd"]()
    with pytest.raises(ConfigError, match="accountant"):
        DEFENSES["dp_sgd"](noise_multiplier=1.0, accountant="gdp")
    bn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    hooks = DPSGDHooks(0.0, 1.0)
    hooks.loss(make_job().recipe)
    with pytest.raises(ConfigError, match="BatchNorm"):
        hooks.gradient(None, list(bn.parameters()), Batch(x, y, torch.arange(8), bn))


def test_dp_sgd_in_a_tiny_study_reports_epsilon_and_brings_the_loss_attack_to_chance(tiny_raw, tmp_path):
    from overconf.report.tables import Table
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 8, "hidden": 64}}]  # no BatchNorm
    raw["recipe"] = {"epochs": 20, "lr": 0.003, "batch_size": 32}  # the baseline overfits (train acc ~0.99)
    raw["sources"] = ["test"]
    raw["attacks"] = ["loss"]
    raw["settings"] = {"baseline": {},
                       "dp": {"defense": {"name": "dp_sgd", "noise_multiplier": 5.0, "max_grad_norm": 1.0}},
                       "dp_unaware": {"defense": {"name": "dp_sgd", "noise_multiplier": 5.0}, "attacker": "unaware"},
                       "es": {"defense": {"name": "early_stopping", "patience": 2}}}
    result = Study(config_from_dict(raw), tmp_path / "dp").run(report=False)
    t = Table(result.rows)
    m = "salem_cnn"
    assert t.get(m, "baseline", "loss", "test", "auroc")[0] > 0.55  # measured 0.583
    assert abs(t.get(m, "dp", "loss", "test", "auroc")[0] - 0.5) < 0.03  # measured 0.491
    rows = {r["metric"]: r["value"] for r in result.rows if r["setting"] == "dp" and r["source"] == "defense"}
    q, steps = 32 / 400, 20 * (400 // 32)
    assert rows["epsilon"] == pytest.approx(epsilon_reached(5.0, q, steps, 1e-5)) and rows["delta"] == 1e-5
    assert rows["epsilon_delta_1_over_n"] == pytest.approx(epsilon_reached(5.0, q, steps, 1 / 400))
    assert rows["noise_multiplier"] == 5.0 and "shadow_epsilon" in rows
    unaware = {r["metric"] for r in result.rows if r["setting"] == "dp_unaware" and r["source"] == "defense"}
    assert "epsilon" in unaware and "shadow_epsilon" not in unaware
    es = {r["metric"]: r["value"] for r in result.rows if r["setting"] == "es" and r["source"] == "defense"}
    assert 1 <= es["early_stopping_epoch"] <= es["epochs_run"] <= 20 and "shadow_early_stopping_epoch" in es
    assert es["epochs_run"] == 20 or es["epochs_run"] == es["early_stopping_epoch"] + 2
    cells = {c.setting: c for c in result.cells}
    # the target trains with DP-SGD (other key than the baseline's); the unaware shadow is the baseline's
    assert cells["dp"].target.key != cells["baseline"].target.key
    assert cells["dp_unaware"].target.key == cells["dp"].target.key


# ---------------------------------------------------------------- early stopping (same file: training-time defenses)
def test_early_stopping_stops_at_k_plus_patience_and_keeps_epoch_k_weights():
    from overconf.defenses.early_stopping import EarlyStoppingHooks
    job = make_job(dropout=0.0, epochs=10)
    x, y = job.inputs(), job.labels

    class Scripted(EarlyStoppingHooks):  # validation loss falls to epoch 3, then rises
        values = iter([3.0, 2.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5])

        def validation_value(self, model, weights=None):
            return next(self.values)

    snapshots = {}
    model = job.build()
    history = train_classifier(model, x, y, job.recipe, seed=0, device=CPU, progress=False,
                               hooks=Scripted(x[:10], y[:10], patience=2, epochs=10),
                               on_epoch=lambda s: snapshots.__setitem__(
                                   s.epoch, {k: v.clone() for k, v in s.model.items()}))
    assert len(history) == 5 and history[-1]["early_stopping_epoch"] == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[3][k]), k
    assert any(not torch.equal(snapshots[4][k], snapshots[3][k]) for k in snapshots[3])  # it trained on
    assert DEFENSES["early_stopping"]().info(job, history) == {"early_stopping_epoch": 3, "epochs_run": 5}


def test_early_stopping_on_real_validation_restores_the_best_epoch_at_the_end():
    from overconf.defenses.early_stopping import EarlyStoppingHooks
    job = make_job(dropout=0.0, epochs=4)
    x, y = job.inputs(), job.labels
    hooks = EarlyStoppingHooks(x[:20], y[:20], patience=10, epochs=4)
    model = job.build()
    history = train_classifier(model, x, y, job.recipe, seed=0, device=CPU, progress=False, hooks=hooks)
    assert len(history) == 4 and 1 <= history[-1]["early_stopping_epoch"] <= 4
    with pytest.raises(ConfigError, match="patience"):
        DEFENSES["early_stopping"](patience=0)
    with pytest.raises(ConfigError, match="calibration"):
        DEFENSES["early_stopping"]().hooks_for(job, (x[:0], y[:0]))


# ---------------------------------------------------------------- regularisers as recipe keys
@pytest.mark.parametrize("name,key", [("label_smoothing", "label_smoothing"), ("l2", "weight_decay"),
                                      ("dropout", "dropout")])
def test_recipe_defenses_are_the_recipe_override(name, key):
    import dataclasses
    from overconf.config import Component
    from overconf.defenses.training import training_defense_info, with_training_defense
    job = make_job(dropout=0.0)
    defended = with_training_defense(job, Component(name, {"value": 0.1}))
    override = dataclasses.replace(job, recipe=job.recipe.updated({key: 0.1}, "test"))
    assert defended.key == override.key != job.key and getattr(defended.recipe, key) == 0.1
    assert DEFENSES[name].kind == "training"
    with pytest.raises(ConfigError, match="must be a number"):
        DEFENSES[name](value="a lot")


def test_list_defenses_shows_the_whole_suite():
    from overconf.core.names import NAMES
    assert set(NAMES["defense"]) == set(DEFENSES.names())
    kinds = {n: DEFENSES[n].kind for n in DEFENSES.names()}
    assert {n for n, k in kinds.items() if k == "training"} == {"dp_sgd", "early_stopping", "label_smoothing",
                                                                "l2", "dropout", "adversarial_regularisation"}


def test_reference_models_of_an_aware_attacker_train_with_dp_sgd(tiny_raw, tmp_path):
    from overconf.defenses.dp_sgd import DPSGDHooks
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict
    import overconf.training.jobs as jobs

    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}]
    raw["recipe"] = {"epochs": 1, "lr": 0.003, "batch_size": 64}
    raw["sources"], raw["attacks"] = ["test"], ["lira"]
    raw["reference"] = {"num_models": 4, "population": 50}
    raw["settings"] = {"aware": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0}, "attacker": "aware"},
                       "unaware": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0}, "attacker": "unaware"}}
    seen, real = [], jobs.train_classifier
    jobs.train_classifier = lambda *a, **kw: seen.append((kw["desc"], type(kw["hooks"]))) or real(*a, **kw)
    try:
        Study(config_from_dict(raw), tmp_path / "ref").run(report=False)
    finally:
        jobs.train_classifier = real
    kinds = {}
    for desc, cls in seen:
        kinds.setdefault(desc.split()[0], set()).add(cls)
    assert kinds["target"] == {DPSGDHooks}
    assert kinds["shadow"] == {DPSGDHooks, TrainingHooks}  # aware: DP-SGD; unaware: plain
    assert kinds["reference"] == {DPSGDHooks, TrainingHooks}
    assert sum(1 for d, c in seen if d.startswith("reference") and c is DPSGDHooks) == 4


# ---------------------------------------------------------------- batched DP-SGD (torch.func, G models at once)
def stacked(models):
    from torch.func import stack_module_state
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    return base, params, buffers


def test_batched_zero_noise_update_of_each_model_equals_opacus():
    """Three models, Poisson-like batches of 10, 7 and 4 rows padded to 10: each model's gradient is
    opacus' clipped update (GradSampleModule + DPOptimizer, noise 0) on its own real rows."""
    job = make_job(dropout=0.0)
    models = [make_job(seed=s, dropout=0.0).build().train() for s in range(3)]
    base, params, buffers = stacked(models)
    x, y = job.inputs(), job.labels
    sizes, clip, expected = [10, 7, 4], 0.05, 8.0
    idx = torch.full((3, 10), -1)
    for j, s in enumerate(sizes):
        idx[j, :s] = torch.arange(s) * 3 + j
    valid = idx >= 0
    rows = idx.clamp(min=0)
    hooks = DPSGDHooks(0.0, clip)
    loss_fn = hooks.loss(job.recipe)
    hooks.expected_batch_size = expected
    plist = list(params.values())
    hooks.gradient(None, plist, Batch(x[rows], y[rows], rows, mask=valid, functional=(base, params, buffers)))
    for j, model in enumerate(models):
        xj, yj = x[idx[j, : sizes[j]]], y[idx[j, : sizes[j]]]
        ref = opacus_update(model, loss_fn, xj, yj, clip, int(expected))
        for (name, p), r in zip(params.items(), ref):
            torch.testing.assert_close(p.grad[j], r, rtol=1e-4, atol=1e-6, msg=f"model {j} {name}")


def batched_dp(sigma, seeds, epochs=2):
    from overconf.training.batched import train_batched
    job = make_job(dropout=0.0, epochs=epochs)
    keep = torch.zeros(len(job.labels), len(seeds), dtype=torch.bool)
    keep[:64] = True
    models = [make_job(seed=s, dropout=0.0).build() for s in seeds]
    sds, hist = train_batched(models, job.inputs(), job.labels, keep, job.recipe, seeds=seeds, dropout_seed=0,
                              device=CPU, progress=False, hooks=DPSGDHooks(sigma, 1.0))
    return job, keep, sds, hist


def test_batched_dp_is_reproducible_per_model_noise_and_matches_sequential_dp():
    job, keep, a, hist = batched_dp(1.0, [0, 1])
    _, _, b, _ = batched_dp(1.0, [0, 1])
    _, _, c, _ = batched_dp(1.0, [0, 0])
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]) and torch.equal(a[1][k], b[1][k])  # reproducible
    assert any(not torch.equal(a[1][k], c[1][k]) for k in a[1])  # model 1's own seeded batches and noise
    assert all(torch.equal(c[0][k], c[1][k]) for k in c[0])  # same seed, same model: noise is per model
    _, _, z, _ = batched_dp(0.0, [0, 1])
    assert any(not torch.equal(a[0][k], z[0][k]) for k in a[0])  # the noise acts
    assert len(hist[0]) == 2
    # model j batched = sequential DP-SGD of the same seed (same Poisson masks and noise order)
    model = make_job(seed=1, dropout=0.0).build()
    train_classifier(model, job.inputs()[keep[:, 1]], job.labels[keep[:, 1]], job.recipe, seed=1, device=CPU,
                     progress=False, hooks=DPSGDHooks(1.0, 1.0))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(a[1][k], v, rtol=1e-3, atol=1e-4, msg=k)


def test_batched_steps_and_epsilon_are_the_accountants():
    from opacus.accountants import RDPAccountant
    hooks = DPSGDHooks(1.0, 1.0)
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    steps = hooks.group_batches(64, 16, gens, CPU)
    assert len(steps) == 64 // 16 and all(s.shape[0] == 3 for s in steps)
    assert hooks.expected_batch_size == 16.0
    acc = RDPAccountant()
    for _ in range(3 * len(steps)):  # 3 epochs
        acc.step(noise_multiplier=1.0, sample_rate=16 / 64)
    d = DEFENSES["dp_sgd"](noise_multiplier=1.0, delta=1e-3)
    assert d.describe(64, 16, 3)["epsilon"] == pytest.approx(acc.get_epsilon(delta=1e-3), rel=1e-6)


def test_dp_key_records_the_groupnorm_swap_only_for_batchnorm_architectures():
    import dataclasses
    job = make_job()
    d = DEFENSES["dp_sgd"](noise_multiplier=1.0)
    hooks = d.hooks_for(job)  # salem_cnn: no BatchNorm, the DP key is as before
    assert hooks.describe() == {"kind": "dp_sgd", "noise_multiplier": 1.0, "max_grad_norm": 1.0, "sampling": "poisson"}
    assert not hooks.replace_batchnorm and hooks.prepare_model(job.build()) is not None
    bn = dataclasses.replace(job, arch="small_resnet", params={"width": 4})
    bn_hooks = d.hooks_for(bn)
    assert bn_hooks.describe()["batchnorm"] == "groupnorm"
    model = dataclasses.replace(bn, hooks=bn_hooks).build()
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.GroupNorm in kinds and not any(issubclass(k, torch.nn.modules.batchnorm._BatchNorm) for k in kinds)
    assert d.info(dataclasses.replace(bn, hooks=bn_hooks), [{}])["dp_batchnorm_replaced"] == 1.0
    assert d.info(dataclasses.replace(job, hooks=hooks), [{}])["dp_batchnorm_replaced"] == 0.0


def test_small_resnet_trains_under_dp_as_groupnorm_in_a_study_and_the_summary_says_so(tiny_raw, tmp_path):
    from overconf.report.summary import summary_markdown
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)  # small_resnet (BatchNorm)
    raw["recipe"] = {"epochs": 1, "lr": 0.003, "batch_size": 64}
    raw["sources"], raw["attacks"] = ["test"], ["loss"]
    raw["settings"] = {"baseline": {}, "dp": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0}}}
    cfg = config_from_dict(raw)
    result = Study(cfg, tmp_path / "bn").run(report=False)
    rows = {(r["setting"], r["metric"]): r["value"] for r in result.rows if r["source"] == "defense"}
    assert rows[("dp", "dp_batchnorm_replaced")] == 1.0 and rows[("dp", "shadow_dp_batchnorm_replaced")] == 1.0
    cells = {c.setting: c for c in result.cells}
    kinds = {type(m) for m in cells["dp"].target.model.modules()}
    assert torch.nn.GroupNorm in kinds and torch.nn.BatchNorm2d not in kinds
    assert torch.nn.BatchNorm2d in {type(m) for m in cells["baseline"].target.model.modules()}
    text = summary_markdown(result.rows, cfg, result)
    assert text.count("replaced by GroupNorm") == 1
    # the summary prints DP-SGD's epsilon with its delta (issue 21), and the 1/n figure beside it
    eps = rows[("dp", "epsilon")]
    assert f"DP-SGD: epsilon {eps:.3g} at delta 1e-05 ({rows[('dp', 'epsilon_delta_1_over_n')]:.3g} at delta = 1/n)" in text


def test_a_delta_not_below_one_over_n_is_refused_before_any_training(tiny_raw):
    """delta must be < 1/n (400 training points here): config validation refuses it, naming the
    setting and the bound, before a model is trained; a delta below 1/n passes."""
    from overconf.runner.validation import config_from_dict

    raw = copy.deepcopy(tiny_raw)
    raw["settings"] = {"baseline": {}, "dp": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0, "delta": 0.005}}}
    with pytest.raises(ConfigError, match=r"settings\.dp\.defense \(dp_sgd\): delta = 0\.005 .*1/n = 1/400"):
        config_from_dict(raw)
    raw["settings"]["dp"]["defense"]["delta"] = 0.001  # < 1/400
    assert config_from_dict(raw).settings[1].defense.params["delta"] == 0.001


def test_reference_models_of_a_dp_setting_train_batched(tiny_raw, tmp_path):
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict
    import overconf.reference.manager as manager

    raw = copy.deepcopy(tiny_raw)
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}]
    raw["recipe"] = {"epochs": 1, "lr": 0.003, "batch_size": 64}
    raw["sources"], raw["attacks"] = ["test"], ["lira"]
    raw["reference"] = {"num_models": 4, "population": 50, "mode": "batched"}
    raw["settings"] = {"aware": {"defense": {"name": "dp_sgd", "noise_multiplier": 1.0}, "attacker": "aware"}}
    seen, real = [], manager.train_batched
    manager.train_batched = lambda models, *a, **kw: seen.append((len(models), type(kw["hooks"]))) or real(models, *a, **kw)
    try:
        Study(config_from_dict(raw), tmp_path / "ref").run(report=False)
    finally:
        manager.train_batched = real
    assert sum(n for n, cls in seen if cls is DPSGDHooks) == 4
