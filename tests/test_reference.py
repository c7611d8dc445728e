"""Reference models (keep matrix, batched training, cached outputs) and the attacks that use them:
LiRA, RMIA and Shokri."""
import copy
import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from overconf.attacks import ATTACKS, Signals
from overconf.attacks.scores import scaled_logit
from overconf.core.cache import Cache
from overconf.config import Recipe
from overconf.runner.validation import config_from_dict
from overconf.core.errors import ConfigError
from overconf.models import build_model
from overconf.reference import balanced_keep
from overconf.reference.logits import stacked_logits
from overconf.training.batched import train_batched
from overconf.reference.manager import ReferenceSet
from overconf.core.seeding import isolated_rng
from overconf.runner.study import Study
from overconf.training import train_classifier

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- keep matrix

def test_keep_matrix_is_balanced_and_seeded():
    keep = balanced_keep(200, 16, torch.Generator().manual_seed(0))
    assert keep.shape == (200, 16) and keep.dtype == torch.bool
    assert bool((keep.sum(1) == 8).all())  # every point IN for exactly half of the models
    assert bool((keep.sum(0) == 100).all())  # every model trains on half of the points
    again = balanced_keep(200, 16, torch.Generator().manual_seed(0))
    other = balanced_keep(200, 16, torch.Generator().manual_seed(1))
    assert torch.equal(keep, again) and not torch.equal(keep, other)
    # memberships of models from different pairs are independent: about half overlap
    overlap = (keep[:, 0] & keep[:, 2]).double().mean()
    assert 0.15 < overlap < 0.35
    with pytest.raises(ValueError):
        balanced_keep(200, 5, torch.Generator())


# ----------------------------------------------------------------------------- LiRA

def phi_signals(phi_target: torch.Tensor, phi_ref: torch.Tensor, keep: torch.Tensor) -> Signals:
    """Two-class signals whose scaled logit (label 0) is exactly ``phi``: logits [phi, 0]."""
    def logits(phi):
        return torch.stack([phi, torch.zeros_like(phi)], -1)

    return Signals(logits(phi_target).log_softmax(-1), torch.zeros(len(phi_target), dtype=torch.long),
                   {"reference_logits": logits(phi_ref).float(), "reference_keep": keep})


def gaussian_world(n: int, k: int, d: float, s: float, seed: int):
    """Per point mu_out ~ U(-3, 3), mu_in = mu_out + d; reference phi ~ N(mu_in/out, s^2) on a
    balanced keep matrix; target phi of members ~ N(mu_in, s^2), of non-members ~ N(mu_out, s^2)."""
    g = torch.Generator().manual_seed(seed)
    mu_out = torch.rand(2 * n, generator=g, dtype=torch.float64) * 6 - 3
    mu_in = mu_out + d
    keep = balanced_keep(2 * n, k, g)
    noise = torch.randn(2 * n, k, generator=g, dtype=torch.float64) * s
    ref = torch.where(keep, mu_in[:, None], mu_out[:, None]) + noise
    target = torch.randn(2 * n, generator=g, dtype=torch.float64) * s
    target[:n] += mu_in[:n]
    target[n:] += mu_out[n:]
    return phi_signals(target[:n], ref[:n], keep[:n]), phi_signals(target[n:], ref[n:], keep[n:])


@pytest.mark.parametrize("params", [{}, {"variance": "global"}, {"online": False},
                                    {"online": False, "variance": "global"}])
def test_lira_auc_matches_the_analytic_value_on_gaussian_scaled_logits(params):
    n, k, d, s = 4000, 64, 1.0, 1.0
    fit_in, fit_out = gaussian_world(n, k, d, s, seed=0)
    eval_in, eval_out = gaussian_world(n, k, d, s, seed=1)
    fitted = ATTACKS["lira"](**params).fit(fit_in, fit_out, generator=torch.Generator().manual_seed(0))
    s_in, s_out = fitted.score(eval_in), fitted.score(eval_out)
    auc = roc_auc_score([1] * n + [0] * n, torch.cat([s_in, s_out]).numpy())
    analytic = 0.5 * (1 + math.erf(abs(d) / (math.sqrt(2) * s) / math.sqrt(2)))  # Phi(|d| / (sqrt 2 s))
    assert analytic == pytest.approx(0.7602, abs=1e-4)
    assert auc == pytest.approx(analytic, abs=0.02)  # sampling error ~0.005, K = 64 estimates
    # the Youden point of equal-variance Gaussians: TPR = Phi(d / 2s), FPR = 1 - Phi(d / 2s)
    tpr, fpr = float((s_in >= fitted.threshold).double().mean()), float((s_out >= fitted.threshold).double().mean())
    assert tpr - fpr == pytest.approx(2 * 0.5 * (1 + math.erf(0.5 / math.sqrt(2))) - 1, abs=0.05)
    assert fitted.info["global_sd_out"] == pytest.approx(s, rel=0.05)
    assert fitted.info["in_out_shift"] == pytest.approx(d, abs=0.05)


def test_lira_falls_back_for_points_no_reference_model_trained_on():
    fit_in, fit_out = gaussian_world(1000, 16, 2.0, 1.0, seed=0)
    fitted = ATTACKS["lira"]().fit(fit_in, fit_out, generator=torch.Generator())
    ood = copy.copy(fit_out)
    ood.extra = dict(ood.extra, reference_keep=torch.zeros_like(ood.extra["reference_keep"]))
    scores = fitted.score(ood)
    # no IN model: mu_in = mu_out + shift, s_in = s_out, an equal-variance likelihood ratio
    #   log N(phi; mu_out + d, s^2) - log N(phi; mu_out, s^2) = d (phi - mu_out - d / 2) / s^2
    phi_t = ood.log_probs[:, 0] - ood.log_probs[:, 1]
    phi_r = ood.extra["reference_logits"][..., 0].double()
    mu, var = phi_r.mean(1), phi_r.var(1)
    d = fitted.info["in_out_shift"]
    assert torch.allclose(scores, d * (phi_t - mu - d / 2) / var, atol=1e-9)



def test_lira_scores_without_signal_put_every_ood_point_on_one_side_of_a_threshold():
    """docs/studies/defenses.md, "The LiRA anomaly under DP-SGD": with K = 4 reference models and
    no membership signal (d ~ 0, as under DP-SGD), the in-distribution scores are heavy-tailed (2 IN
    and 2 OUT models per point) while the points no model trained on get the equal-variance
    fallback d (phi - mu_out - d / 2) / s_out^2, compressed near 0; a threshold below that band
    flags nearly every such point, one above it nearly none, whatever the inputs are."""
    fit_in, fit_out = gaussian_world(1000, 4, 0.05, 1.0, seed=0)
    fitted = ATTACKS["lira"]().fit(fit_in, fit_out, generator=torch.Generator())
    ood = copy.copy(fit_out)
    ood.extra = dict(ood.extra, reference_keep=torch.zeros_like(ood.extra["reference_keep"]))
    in_dist, unseen = fitted.score(fit_out), fitted.score(ood)
    q10, q90 = in_dist.quantile(torch.tensor([0.1, 0.9], dtype=in_dist.dtype))
    lo, hi = unseen.quantile(torch.tensor([0.1, 0.9], dtype=unseen.dtype))
    assert (hi - lo) < 0.1 * (q90 - q10)  # the unseen points' band is narrow
    assert ((unseen >= q10).double().mean() > 0.85) and ((unseen >= q90).double().mean() < 0.15)

def test_scaled_logit_is_stable_for_saturated_probabilities():
    z = torch.tensor([[60.0, 0.0, -5.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    expected = torch.stack([z[0, 0] - torch.logsumexp(z[0, 1:], 0), z[1, 2] - torch.logsumexp(z[1, :2], 0)])
    assert torch.allclose(scaled_logit(z.log_softmax(1), y), expected, atol=1e-12)
    assert torch.allclose(scaled_logit(z, y), expected, atol=1e-12)  # the normaliser cancels
    assert scaled_logit(z.log_softmax(1), y)[0] == pytest.approx(60 - math.log(1 + math.exp(-5)), abs=1e-9)


# ----------------------------------------------------------------------------- RMIA

def rmia_loop(target_p, labels, ref_p, keep, z_target_p, z_labels, z_ref_p, online, a, gamma):
    """The paper's formula, literally: Score(x) = |{z : LR_x / LR_z > gamma}| / |Z| with
    LR = Pr(y|x; target) / Pr(y|x), Pr(y|x) = mean_k Pr(y|x; ref_k) online and
    ((1 + a) / 2) mean_{OUT k} Pr(y|x; ref_k) + (1 - a) / 2 offline."""
    def pr(row_p, row_keep, y):
        if online:
            vals = [row_p[k][y] for k in range(len(row_p))]
            return sum(vals) / len(vals)
        vals = [row_p[k][y] for k in range(len(row_p)) if not row_keep[k]]
        return (1 + a) / 2 * (sum(vals) / len(vals)) + (1 - a) / 2

    lr_z = [z_target_p[j][z_labels[j]] / pr(z_ref_p[j], [False] * len(z_ref_p[j]), z_labels[j])
            for j in range(len(z_labels))]
    scores = []
    for i in range(len(labels)):
        lr_x = target_p[i][labels[i]] / pr(ref_p[i], keep[i], labels[i])
        scores.append(sum(1 for v in lr_z if lr_x / v > gamma) / len(lr_z))
    return scores


@pytest.mark.parametrize("online,a,gamma", [(True, 0.3, 1.0), (True, 0.3, 2.0), (False, 0.3, 1.0),
                                            (False, 0.0, 1.5), (False, 1.0, 1.0)])
def test_rmia_equals_a_direct_implementation_of_the_paper(online, a, gamma):
    g = torch.Generator().manual_seed(3)
    n, k, c, z = 40, 6, 4, 25
    ref = torch.randn(n, k, c, generator=g) * 2
    target = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (n,), generator=g)
    labels[:5] = -1  # unlabelled inputs: the target's predicted class (unlabelled: target_class)
    keep = balanced_keep(n, k, g)
    z_ref = torch.randn(z, k, c, generator=g) * 2
    z_target = torch.randn(z, c, generator=g, dtype=torch.float64) * 2
    z_labels = torch.randint(0, c, (z,), generator=g)
    s = Signals(target.log_softmax(1), labels, {
        "reference_logits": ref, "reference_keep": keep, "population_log_probs": z_target.log_softmax(1),
        "population_labels": z_labels, "population_reference_logits": z_ref})
    got = ATTACKS["rmia"](online=online, a=a, gamma=gamma, unlabelled="target_class").score(s)
    y = s.labels_or_predicted.tolist()
    expected = rmia_loop(target.softmax(1).tolist(), y, ref.double().softmax(-1).tolist(), keep.tolist(),
                         z_target.softmax(1).tolist(), z_labels.tolist(), z_ref.double().softmax(-1).tolist(),
                         online, a, gamma)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    assert len(set(expected)) > 5  # the fixture is not degenerate
    # population signals are not per-point rows: a subset keeps them whole
    sub = s.subset(slice(0, 10))
    assert torch.equal(ATTACKS["rmia"](online=online, a=a, gamma=gamma, unlabelled="target_class").score(sub), got[:10])


# ----------------------------------------------------------------------------- training

def tiny_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (n,), generator=g)
    return images, labels


def reference_set(mode: str, k: int = 4, epochs: int = 3, group_size: int = 32, arch="salem_cnn",
                  params=None, dropout=0.0) -> ReferenceSet:
    images, labels = tiny_data()
    n = len(images)
    params = {"width": 4, "hidden": 16} if params is None else params
    return ReferenceSet(arch, params, Recipe(epochs=epochs, batch_size=16, lr=3e-3, dropout=dropout),
                        images, labels, torch.zeros(n, dtype=torch.long), torch.arange(n),
                        balanced_keep(n, k, torch.Generator().manual_seed(0)), [100 + i for i in range(k)],
                        torch.tensor([[[0.5]]]), torch.tensor([[[0.25]]]), 3, mode, group_size,
                        torch.randn(10, 1, 12, 12), torch.zeros(10, dtype=torch.long))


def test_batched_and_sequential_training_give_matching_models(tmp_path):
    rs = reference_set("batched")
    models = [rs.job(k).build() for k in range(4)]
    sds, hist = train_batched(models, rs.inputs(), rs.labels, rs.keep, rs.recipe, seeds=rs.seeds,
                              dropout_seed=0, device=CPU, progress=False)
    for k in range(4):
        job = rs.job(k)
        model = job.build()
        h = train_classifier(model, job.inputs(), job.labels, job.recipe, seed=job.seed, device=CPU, progress=False)
        for name, v in model.state_dict().items():
            assert torch.allclose(v, sds[k][name], atol=1e-5, rtol=1e-4), (k, name)
        assert [e["loss"] for e in h] == pytest.approx([e["loss"] for e in hist[k]], rel=1e-5)
    # the manager's two modes agree on every output (different cache keys: different trainers)
    x = rs.inputs()[:20]
    batched = rs.logits(x, Cache(tmp_path / "b"), CPU)
    sequential = reference_set("sequential").logits(x, Cache(tmp_path / "s"), CPU)
    assert batched.shape == (20, 4, 3)
    assert torch.allclose(batched, sequential, atol=1e-4)
    assert rs.model_keys != reference_set("sequential").model_keys


def test_reference_outputs_are_cached_and_training_resumes_per_group(tmp_path, monkeypatch):
    import overconf.reference.manager as manager

    cache = Cache(tmp_path / "c")
    rs = reference_set("batched", k=4, group_size=2, epochs=3)
    x = rs.inputs()[:8]
    real = manager.train_batched
    calls = []

    def killed_in_second_group(*args, on_epoch, **kw):
        calls.append(len(args[0]))

        def hook(state):
            on_epoch(state)
            if len(calls) == 2 and state.epoch == 2:
                raise KeyboardInterrupt

        return real(*args, on_epoch=hook, **kw)

    original = ReferenceSet._train_group
    monkeypatch.setattr(manager, "train_batched", killed_in_second_group)
    monkeypatch.setattr(ReferenceSet, "_train_group",  # save the group's state after every epoch
                        lambda self, ks, c, d, p: original(self, ks, c, d, p, checkpoint_every=0))
    with pytest.raises(KeyboardInterrupt):
        rs.logits(x, cache, CPU)
    finished = [cache.load("models", rs.model_keys[k]) is not None for k in range(4)]
    assert finished == [True, True, False, False]  # the first group survived the kill
    assert len(list((tmp_path / "c" / "partial").glob("*.pt"))) == 1  # the second group's state

    calls.clear()
    resumed = rs.logits(x, cache, CPU)
    assert calls == [2]  # only the unfinished group trained again, from its saved epoch
    assert not list((tmp_path / "c" / "partial").glob("*.pt"))
    monkeypatch.undo()
    fresh = reference_set("batched", k=4, group_size=2, epochs=3).logits(x, Cache(tmp_path / "fresh"), CPU)
    assert torch.allclose(resumed, fresh, atol=1e-5)

    n_files = len(list((tmp_path / "c" / "reference_outputs").glob("*.pt")))
    assert n_files == 4  # one entry per (reference model, input set)
    again = rs.logits(x, cache, CPU)  # served from the cache: no model is loaded or run
    assert torch.equal(again, resumed)


def test_reference_inference_runs_in_eval_mode():
    """The LiRA reference code ran inference in train mode (dropout on, BatchNorm batch
    statistics); here inference is always in eval mode and leaves the template's mode alone."""
    with isolated_rng(0):
        models = [build_model("small_resnet", in_channels=1, num_classes=3, image_size=12, width=4, dropout=0.5)
                  for _ in range(2)]
    x = torch.randn(40, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    for m in models:  # move the BatchNorm running statistics away from their initial values
        m.train()
        m(x)
    template = models[0]
    template.train()
    sds = [m.state_dict() for m in models]
    models[1].eval()
    for vectorize in (True, False):  # vmap over the models (CUDA default) or one by one (CPU)
        a = stacked_logits(template, sds, x, CPU, vectorize=vectorize)
        assert torch.equal(a, stacked_logits(template, sds, x, CPU, vectorize=vectorize))  # identical twice
        b = stacked_logits(template, sds, x[:7], CPU, vectorize=vectorize)
        assert torch.allclose(a[:, :7], b, atol=1e-6)  # running statistics, not the batch's
        assert template.training  # the caller's mode is kept
        with torch.no_grad():
            assert torch.allclose(a[1], models[1](x), atol=1e-5)
            assert not torch.allclose(a[0], template(x), atol=1e-2)  # (train mode would differ)


# ----------------------------------------------------------------------------- in a study

REF_TINY = {
    "models": [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}],
    "recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
    "sources": ["test", "digits", "scaled", "gaussian"],
    "attacks": ["max_score", {"name": "shokri", "epochs": 3}, "lira", {"name": "lira", "online": False},
                {"name": "lira", "variance": "global", "augment": ["flip"]}, "rmia",
                {"name": "rmia", "online": False}],
    "reference": {"num_models": 4, "population": 100},
}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    from tests.conftest import TINY

    tmp = tmp_path_factory.mktemp("refstudy")
    raw = copy.deepcopy(TINY) | copy.deepcopy(REF_TINY)
    raw["cache_dir"] = str(tmp / "checkpoints")
    raw["output_dir"] = str(tmp / "runs")
    cfg = config_from_dict(raw)
    return Study(cfg, tmp / "run").run(report=False), raw


def test_every_reference_attack_runs_on_every_source(reference_run):
    result, raw = reference_run
    labels = ["shokri", "lira_online", "lira_offline", "lira_online_global_aug2", "rmia_online", "rmia_offline"]
    for attack in labels:
        for source in ["test", "digits", "scaled", "gaussian"]:
            got = {r["metric"]: r["value"] for r in result.rows if r["attack"] == attack and r["source"] == source}
            assert {"tpr", "fpr", "auroc", "tpr_at_fpr_0.01"} <= set(got), (attack, source)
            assert 0 <= got["fpr"] <= 1 and 0 <= got["auroc"] <= 1
        shadow = {r["metric"] for r in result.rows if r["attack"] == attack and r["source"] == "shadow"}
        assert {"shadow_tpr", "shadow_fpr", "num_models"} <= shadow, attack
    cell = result.cells[0]
    assert set(cell.scores) >= set(labels)


def test_queried_points_know_their_reference_models(reference_run):
    result, _ = reference_run
    cell = result.cells[0]
    k = 4
    assert bool((cell.members.extra["reference_keep"].sum(1) == k // 2).all())  # target members: IN for half
    assert bool((cell.sources["test"].extra["reference_keep"].sum(1) == k // 2).all())
    for ood in ("digits", "gaussian"):  # no reference model ever trained on these
        assert not cell.sources[ood].extra["reference_keep"].any()
    # scaled inputs are made from the test source's images (target_test[:eval_size]), one each, in
    # order: each carries the keep column of its original (half of the models trained on it)
    assert torch.equal(cell.sources["scaled"].extra["reference_keep"], cell.sources["test"].extra["reference_keep"])
    assert cell.members.extra["reference_logits"].shape == (len(cell.members), k, 10)
    assert cell.members.extra["population_reference_logits"].shape == (100, k, 10)


def test_reference_models_follow_the_attackers_recipe(tiny_raw, tmp_path):
    """With ``attacker: uncalibrated`` the attacker does not know the defense: its shadow and its
    reference models use the plain study recipe, the baseline's (one reference set, trained once)."""
    import overconf.training.jobs as trained
    from overconf.reference import manager

    raw = copy.deepcopy(tiny_raw) | copy.deepcopy(REF_TINY)
    raw["sources"], raw["attacks"] = ["test"], ["lira"]
    raw["data"] = dict(raw["data"], eval_size=100, fit_size=100)
    raw["recipe"] = dict(raw["recipe"], epochs=1)
    raw["settings"] = {"baseline": {},
                       "ls_unaware": {"recipe": {"label_smoothing": 0.1}, "attacker": "uncalibrated"}}
    trained_recipes = []
    real = trained.train_classifier
    trained.train_classifier = lambda *a, **kw: trained_recipes.append(a[3]) or real(*a, **kw)
    try:
        study = Study(config_from_dict(raw), tmp_path / "run")
        result = study.run(report=False)
    finally:
        trained.train_classifier = real
    sets = list(manager._SETS[study.context].values())  # memoised per seed context (one seed here)
    assert len(sets) == 1  # the baseline's and the unaware attacker's reference sets are one
    assert sets[0].recipe.label_smoothing == 0.0
    assert sets[0].recipe == config_from_dict(raw).recipe_for(study.cfg.models[0], study.cfg.settings[0])
    # trained: baseline target and shadow, the label-smoothed target, K = 4 reference models
    assert len(trained_recipes) == 3 + 4
    assert sum(r.label_smoothing == 0.1 for r in trained_recipes) == 1
    assert {r["setting"] for r in result.rows if r["attack"] == "lira_online"} == {"baseline", "ls_unaware"}


def test_a_second_run_trains_nothing_and_reproduces_the_results(reference_run, tmp_path):
    import json

    import overconf.training.jobs as trained

    result, raw = reference_run
    trained_calls = []
    real = trained.train_classifier
    trained.train_classifier = lambda *a, **kw: trained_calls.append(1) or real(*a, **kw)
    try:
        again = Study(config_from_dict(raw), tmp_path / "again").run(report=False)
    finally:
        trained.train_classifier = real
    assert trained_calls == []
    assert json.dumps(again.rows) == json.dumps(result.rows)


def test_reference_config_errors_come_before_any_training(tiny_raw, tmp_path):
    for bad, match in [({"num_models": 5}, "even"), ({"mode": "vmap"}, "reference.mode"),
                       ({"extra_points": 3}, "extra_points"), ({"params": {"width": 4}}, "reference.arch"),
                       ({"arch": "salem_cnn", "params": {"depth": 3}}, "depth"),
                       ({"recipe": {"epochz": 3}}, "epochz")]:
        raw = copy.deepcopy(tiny_raw)
        raw["attacks"] = ["lira"]
        raw["reference"] = bad
        with pytest.raises(ConfigError, match=match):
            config_from_dict(raw)
    for ref, match in [({"mode": "batched"}, "BatchNorm"), ({"population": 10**6}, "reserve"),
                       ({"num_models": 2}, "num_models >= 4")]:
        raw = copy.deepcopy(tiny_raw)  # small_resnet: BatchNorm
        raw["attacks"] = ["lira"]
        raw["reference"] = ref
        with pytest.raises(ConfigError, match=match):
            Study(config_from_dict(raw), tmp_path / "bad").run(report=False)
        assert not (tmp_path / "checkpoints" / "models").exists()
    raw = copy.deepcopy(tiny_raw)
    raw["attacks"] = [{"name": "lira", "augment": ["rotate"]}]
    with pytest.raises(ConfigError, match="rotate"):
        config_from_dict(raw)


def test_augmented_queries():
    from overconf.data.augment import expand_queries, hflip, shift

    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(hflip(x)[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    right = shift(x, 1, 0)
    assert torch.equal(right[0, 0, :, 1:], x[0, 0, :, :3]) and torch.equal(right[0, 0, :, 0], x[0, 0, :, 0])
    down = shift(x, 0, 1)
    assert torch.equal(down[0, 0, 1:], x[0, 0, :3])
    assert expand_queries(["flip", "shift"], "t") == ["flip", "shift_right", "shift_left", "shift_down", "shift_up"]
