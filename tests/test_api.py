"""The public Python API: overconf.run / Study, attacks on plain tensors, bring-your-own model."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import overconf
from conftest import TINY
from overconf.core.errors import ConfigError

ROOT = Path(__file__).parents[1]
RAW = copy.deepcopy(TINY) | {"recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
                             "sources": ["test", "digits", "gaussian"],
                             "metrics": {"bootstrap": 50}}


def test_public_names_load_lazily_without_torch():
    code = ("import sys, overconf\n"
            "assert callable(overconf.run) and overconf.Study and overconf.StudyResult and overconf.load\n"
            "assert 'torch' not in sys.modules, 'torch'\n"
            "print(overconf.load('experiments/fashion_mnist.yaml', recipe__lr=0.01).recipe.lr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.strip() == "0.01", r.stderr
    assert {"run", "Study", "attacks", "metrics", "evaluate"} <= set(dir(overconf))
    with pytest.raises(AttributeError):
        overconf.no_such_name


def test_overrides_follow_the_set_schema():
    cfg = overconf.load(RAW, {"recipe.lr": 0.01, "data.eval_size": 100}, recipe__epochs=3, seeds=[0, 1],
                        settings={"baseline": {}, "t10": {"calibration": {"name": "temperature", "T": 10}}})
    assert (cfg.recipe.lr, cfg.recipe.epochs, cfg.data.eval_size, cfg.seeds) == (0.01, 3, 100, [0, 1])
    assert cfg.settings[1].calibration.params == {"T": 10}
    assert overconf.load(cfg, recipe__lr=0.5).recipe.lr == 0.5 and cfg.recipe.lr == 0.01  # a copy
    assert overconf.load(RAW, cache_dir=Path("/tmp/x"), seeds=(3,)).cache_dir == "/tmp/x"  # paths, tuples
    with pytest.raises(ConfigError, match="not plain data"):
        overconf.load(RAW, recipe__lr=object())
    with pytest.raises(ConfigError, match="lrr"):
        overconf.load(RAW, recipe__lrr=1)
    with pytest.raises(ConfigError, match="recipe.lr"):
        overconf.load(RAW, {"recipe.lr": -1})
    with pytest.raises(ConfigError, match="StudyConfig"):
        overconf.load(42)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    raw = copy.deepcopy(RAW) | {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    result = overconf.run(raw, run_dir=tmp / "run")  # a tiny study in one line
    return result, tmp


def test_run_returns_a_frame_of_self_describing_rows(study):
    import pandas as pd

    result, tmp = study
    df = result.frame
    assert isinstance(df, pd.DataFrame) and len(df) == len(result.rows) > 100
    assert list(df.columns[:7]) == ["model", "seed", "setting", "attack", "source", "metric", "value"]
    fpr = df[(df.attack == "max_score") & (df.metric == "fpr")].set_index("source")["value"]
    assert set(fpr.index) == {"test", "digits", "gaussian"} and fpr.between(0, 1).all()
    assert (df["arch"] == "small_resnet").all() and (df["arch.width"] == 8).all()
    assert (df["calibration"] == "none").all() and (df["attacker"] == "same").all()
    csv = pd.read_csv(result.run_dir / "results.csv")  # analysable without config.yaml
    assert list(csv.columns) == list(df.columns) and len(csv) == len(df)
    assert csv["value"].tolist() == pytest.approx(df["value"].tolist(), nan_ok=True)
    key = (0, "small_resnet", "baseline")
    assert set(result.scores[key]) == {"max_score", "entropy", "salem_top3"}
    assert len(result.scores[key]["max_score"]["members"]) == 200


def _study_models_and_data(result, tmp):
    """The study's trained target and shadow (from its cache) and its evaluation inputs."""
    from overconf.data import load_dataset, make_splits
    from overconf.runner.study import Study as Runner
    from overconf.training.jobs import load_or_train

    cfg = result.config
    r = Runner(cfg, tmp / "unused")
    r.dataset = ds = load_dataset(cfg.data.dataset, cfg.data.root, cfg.data.download)
    r.splits = make_splits(ds, cfg.data.splits, 0)
    r.seed = 0
    model, setting = cfg.models[0], cfg.settings[0]
    trained = {role: load_or_train(r.job(0, role, model, setting), r.cache, r.device, progress=False).model
               for role in ("target", "shadow")}

    def split(name, n):
        x, y = r.splits.images(ds, name)
        return ds.normalize(x[:n]), y[:n]

    n_eval, n_fit = cfg.data.eval_size, cfg.data.fit_size
    sources = r.build_sources(0)
    return (trained, split("target_train", n_eval), split("shadow_train", n_fit), split("shadow_test", n_fit),
            {k: (v.x, v.y) for k, v in sources.items()})


def test_attack_on_plain_tensors_gives_the_study_scores(study):
    from overconf.byo import model_logits
    from overconf.core.seeding import generator

    result, tmp = study
    trained, members, fit_in, fit_out, sources = _study_models_and_data(result, tmp)
    shadow_in, shadow_out = (model_logits(trained["shadow"], x) for x, _ in (fit_in, fit_out))
    target_in = model_logits(trained["target"], members[0])
    key = (0, "small_resnet", "baseline")
    for name, label, params in (("max_score", "max_score", {}), ("entropy", "entropy", {}),
                                ("salem", "salem_top3", {"epochs": 10})):
        g = generator(0, "attack", label, "small_resnet", "baseline")  # the study's stream for this attack
        attack = overconf.attacks.fit(name, shadow_in, shadow_out, fit_in[1], fit_out[1], generator=g, **params)
        assert attack.threshold == pytest.approx(result.thresholds[key][label], rel=1e-12)
        torch.testing.assert_close(attack.score(target_in, members[1]), result.scores[key][label]["members"])
        assert torch.equal(attack.predict(target_in, members[1]),
                           result.scores[key][label]["members"] >= result.thresholds[key][label])


def test_bring_your_own_model_reproduces_the_study_rows(study):
    result, tmp = study
    trained, members, fit_in, fit_out, sources = _study_models_and_data(result, tmp)
    byo = overconf.evaluate(trained["target"], members, sources, shadow=(trained["shadow"], fit_in, fit_out),
                            attacks=["max_score", "entropy", {"name": "salem", "epochs": 10}],
                            name="small_resnet", metrics={"bootstrap": 50})
    key = ("model", "seed", "setting", "attack", "source", "metric")
    study_rows = {tuple(r[k] for k in key): r["value"] for r in result.rows}
    byo_rows = {tuple(r[k] for k in key): r["value"] for r in byo.rows if r["attack"] != "-"
                or r["metric"] == "mean_max_score"}
    assert len(byo_rows) > 100 and set(byo_rows) <= set(study_rows)
    for k, v in byo_rows.items():
        assert v == pytest.approx(study_rows[k], rel=1e-9, abs=1e-12, nan_ok=True), k
    assert byo.frame["shadow"].eq("shadow model").all()


class TinyMLP(torch.nn.Module):
    """A plain nn.Module (no overconf Classifier interface)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)


def _trained_mlp(x, y, seed):
    torch.manual_seed(seed)
    m = TinyMLP()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return m


def test_bring_your_own_plain_module_and_tensors():
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)) for _ in range(4)]
    (x_in, y_in), (x_out, y_out), (xs_in, ys_in), (xs_out, ys_out) = data
    model, shadow = _trained_mlp(x_in, y_in, 0), _trained_mlp(xs_in, ys_in, 1)
    noise = torch.randn(25, 5, generator=g) * 10
    res = overconf.evaluate(model, (x_in, y_in), {"test": (x_out, y_out), "noise": noise},
                            shadow=(shadow, (xs_in, ys_in), (xs_out, ys_out)), metrics={"bootstrap": 20})
    df = res.frame
    assert set(df.model) == {"TinyMLP"} and set(df.attack) == {"-", "max_score", "entropy", "salem_top3"}
    train_acc = df.query("attack == '-' and source == 'train' and metric == 'accuracy'")["value"].item()
    assert train_acc == pytest.approx(float((model(x_in).argmax(1) == y_in).double().mean()))
    # noise has 25 samples: compared with a seeded subset of 25 of the 40 members
    n = df.query("attack == 'max_score' and source == 'noise' and metric in ('n_members', 'n_nonmembers')")
    assert n["value"].tolist() == [25, 25]
    fpr = df.query("attack == 'max_score' and source == 'test' and metric == 'fpr'")["value"].item()
    s_out = res.scores[(0, "TinyMLP", "baseline")]["max_score"]["test"]
    thr = res.thresholds[(0, "TinyMLP", "baseline")]["max_score"]
    assert fpr == pytest.approx(float((s_out >= thr).double().mean()))
    # the attacker fitting on the target itself (known members / non-members)
    own = overconf.evaluate(model, (x_in, y_in), {"test": (x_out, y_out)}, shadow=((x_in, y_in), (x_out, y_out)),
                            attacks=["max_score"], metrics={"bootstrap": 20})
    assert own.frame["shadow"].eq("target").all()
    # a fixed temperature: softmax(z / T) released by target and shadow
    hot = overconf.evaluate(model, (x_in, y_in), {"test": (x_out, y_out)}, shadow=(shadow, (xs_in, ys_in),
                            (xs_out, ys_out)), attacks=["max_score"], temperature=4.0, metrics={"bootstrap": 20})
    mms = hot.frame.query("source == 'members' and metric == 'mean_max_score'")["value"].item()
    with torch.no_grad():
        assert mms == pytest.approx(float(torch.softmax(model(x_in).double() / 4, 1).max(1).values.mean()))
    assert set(hot.frame["calibration"]) == {"temperature"} and set(hot.frame["calibration.T"]) == {4.0}
    with pytest.raises(ConfigError, match="temperature"):
        overconf.evaluate(model, (x_in, y_in), {"test": x_out}, shadow=(x_in, x_out), temperature=0)
    with pytest.raises(ConfigError, match="shadow"):
        overconf.evaluate(model, (x_in, y_in), {"test": x_out})
    with pytest.raises(ConfigError, match="lira needs"):
        overconf.evaluate(model, (x_in, y_in), {"test": x_out}, shadow=(x_in, x_out), attacks=["lira"])
    with pytest.raises(ConfigError, match="labels"):
        overconf.evaluate(model, (x_in, y_in[:3]), {"test": x_out}, shadow=(x_in, x_out))


def test_tensor_attacks_wrap_logits_and_refuse_what_needs_a_study():
    g = torch.Generator().manual_seed(1)
    z_in, z_out = torch.randn(60, 4, generator=g) * 4, torch.randn(60, 4, generator=g)
    a = overconf.attacks.get("max_score").fit(z_in, z_out)
    # max_score on the study's signals: max_k log softmax(z)_k, threshold from the shadow ROC
    torch.testing.assert_close(a.score(z_out), torch.log_softmax(z_out.double(), 1).max(1).values)
    assert torch.equal(a.predict(z_out), a.score(z_out) >= a.threshold)
    lp = torch.log_softmax(z_in.double(), 1)
    b = overconf.attacks.fit("max_score", lp, torch.log_softmax(z_out.double(), 1), log_probs=True)
    assert b.threshold == a.threshold and torch.equal(b.score(lp), a.score(z_in))
    assert "max_score" in overconf.attacks.single_model_attacks()
    assert "lira" not in overconf.attacks.single_model_attacks()
    with pytest.raises(ConfigError, match="run it in a study"):
        overconf.attacks.get("lira")
    with pytest.raises(ConfigError, match="unknown attack"):
        overconf.attacks.get("max_scor")
    with pytest.raises(ConfigError, match=r"\[N, K\]"):
        overconf.attacks.signals(torch.randn(5))


def test_functional_metrics_match_independent_references():
    import numpy as np
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    from overconf import metrics

    g = torch.Generator().manual_seed(2)
    s_in = torch.randn(300, generator=g).double() + 1
    s_out = torch.cat([torch.randn(290, generator=g).double(), s_in[:10]])  # ties across the classes
    y = np.r_[np.ones(300), np.zeros(300)]
    assert metrics.binary_auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, np.r_[s_in, s_out]))
    # TPR at FPR <= x and FPR at TPR >= 0.95 by a direct loop over every threshold
    thresholds = torch.cat([s_in, s_out, torch.tensor([float("inf")])]).unique()
    points = [(float((s_out >= t).double().mean()), float((s_in >= t).double().mean())) for t in thresholds]
    for x in (0.0, 0.01, 0.1):
        best = max(tp for fp, tp in points if fp <= x)
        reached = min(fp for fp, tp in points if fp <= x and tp == best)
        assert metrics.binary_tpr_at_fpr(s_in, s_out, max_fpr=x) == pytest.approx((best, reached))
    assert metrics.binary_fpr_at_tpr(s_in, s_out) == pytest.approx(min(fp for fp, tp in points if tp >= 0.95))
    fpr, tpr, thr = metrics.binary_roc(s_in, s_out)
    assert isinstance(fpr, torch.Tensor) and fpr.dtype == torch.float64 and len(fpr) == len(tpr) == len(thr)
    # Clopper-Pearson against scipy's exact binomial interval
    for k, n in ((0, 50), (7, 50), (50, 50)):
        ci = binomtest(k, n).proportion_ci(0.95, method="exact")
        assert metrics.clopper_pearson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-10)
    rate, lo, hi = metrics.binary_fpr(s_out, 1.0)
    k = int((s_out >= 1.0).sum())
    assert rate == k / 300 and (lo, hi) == pytest.approx(metrics.clopper_pearson_interval(k, 300))
    assert metrics.binary_tpr(s_in, 1.0)[0] == float((s_in >= 1.0).double().mean())
    # ECE / OE by a direct loop over 10 equal-width bins (confidence in (b/10, (b+1)/10])
    probs = torch.softmax(torch.randn(400, 4, generator=g).double() * 3, 1)
    labels = torch.randint(0, 4, (400,), generator=g)
    conf, pred = probs.max(1)
    ece = oe = 0.0
    for b in range(10):
        m = (conf >= b / 10) & (conf < (b + 1) / 10)
        if m.any():
            acc, c = float((pred[m] == labels[m]).double().mean()), float(conf[m].mean())
            ece += float(m.double().mean()) * abs(acc - c)
            oe += float(m.double().mean()) * c * max(c - acc, 0.0)
    assert metrics.multiclass_calibration_error(probs, labels, n_bins=10) == pytest.approx(ece)
    assert metrics.multiclass_overconfidence_error(probs, labels, n_bins=10) == pytest.approx(oe)


def test_example_script_runs(tmp_path):
    """experiments/api_example.py (the notebook-style example of docs/api/index.md) runs end to end."""
    import os

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "OVERCONF_EXAMPLE_DIR": str(tmp_path), "HOME": os.environ.get("HOME", "/tmp")}
    r = subprocess.run([sys.executable, "experiments/api_example.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "run folder:" in r.stdout and "salem scores" in r.stdout and "AUROC" in r.stdout
    assert (tmp_path / "runs").is_dir() and (tmp_path / "checkpoints").is_dir()
