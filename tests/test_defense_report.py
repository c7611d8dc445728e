"""The report side of the defense suite (issue 13): the aware attacker's reference models under
release-time defenses, utility rows (training time), the privacy-utility figure, the defense x
source FPR table and the verdicts on the seeds' claims."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from overconf.config import Component
from overconf.defenses import DEFENSES, DefenseContext

REF_SETTINGS = {"baseline": {},
                "round": {"defense": {"name": "rounding", "d": 1}},
                "round_unaware": {"defense": {"name": "rounding", "d": 1}, "attacker": "unaware"},
                "mg": {"defense": {"name": "memguard", "budget": 0.5, "steps": 20, "epochs": 50}},
                "mg_unaware": {"defense": {"name": "memguard", "budget": 0.5, "steps": 20, "epochs": 50},
                               "attacker": "unaware"}}


@pytest.fixture(scope="module")
def reference_study(tmp_path_factory):
    """A tiny study with LiRA and RMIA (K = 4): the baseline first, then release-time defenses
    (aware and unaware) on the same cache, counting trainings."""
    from conftest import TINY
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict
    import overconf.training.jobs as jobs

    tmp = tmp_path_factory.mktemp("refdef")
    raw = copy.deepcopy(TINY) | {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    raw["models"] = [{"arch": "salem_cnn", "params": {"width": 8}}]
    raw["recipe"] = {"epochs": 2, "lr": 0.003, "batch_size": 64}
    raw["sources"] = ["test", "gaussian"]
    raw["attacks"] = ["loss", {"name": "lira", "online": True}, {"name": "rmia", "online": True},
                      {"name": "label_only_noise", "queries": 2}]
    raw["reference"] = {"num_models": 4, "population": 100}
    first = Study(config_from_dict(raw), tmp / "base").run(report=False)
    trained, real = [], jobs.train_classifier
    jobs.train_classifier = lambda *a, **kw: trained.append(1) or real(*a, **kw)
    raw["settings"] = REF_SETTINGS
    try:
        result = Study(config_from_dict(raw), tmp / "def").run(report=False)
    finally:
        jobs.train_classifier = real
    return first, result, trained


def test_aware_attacker_releases_reference_outputs_through_the_defense(reference_study):
    first, result, trained = reference_study
    assert trained == []  # release-time defenses, aware or not: no target, shadow or reference model trained
    cells = {c.setting: c for c in result.cells}
    ref = "reference_logits"
    base = cells["baseline"].members.extra[ref]
    # unaware: the reference models are released undefended (the baseline's logits)
    assert torch.equal(cells["round_unaware"].members.extra[ref], base)
    assert torch.equal(cells["mg_unaware"].members.extra[ref], base)
    # aware rounding: each reference model's log-softmax through the same rounding (fit-free)
    rounding = DEFENSES["rounding"](d=1)
    expected = torch.stack([rounding.release(base[:, k].double().log_softmax(-1)) for k in range(base.shape[1])], 1)
    assert torch.allclose(cells["round"].members.extra[ref].double(), expected)
    # aware MemGuard changes the reference outputs but never their predicted labels
    mg = cells["mg"].members.extra[ref]
    assert not torch.allclose(mg.double().log_softmax(-1), base.double().log_softmax(-1))
    assert torch.equal(mg.argmax(-1), base.argmax(-1))
    for name in ("population_reference_logits",):
        assert not torch.equal(cells["round"].members.extra[name], cells["round_unaware"].members.extra[name])
    # so LiRA's and RMIA's scores differ between the aware and the unaware attacker
    for attack in cells["round"].scores:
        if attack.startswith(("lira", "rmia")):
            for aware, unaware in (("round", "round_unaware"), ("mg", "mg_unaware")):
                assert not torch.equal(cells[aware].scores[attack]["members"],
                                       cells[unaware].scores[attack]["members"]), (attack, aware)
    # the single-model attacks see only the target's and shadow's releases: aware = unaware for rounding
    assert torch.equal(cells["round"].scores["loss"]["members"], cells["round_unaware"].scores["loss"]["members"])


def test_reference_defense_is_fitted_per_model_on_its_own_training_points():
    from overconf.reference.release import defense_key, release_defense, released

    assert release_defense(None) is None and release_defense(Component("none")) is None
    assert release_defense(Component("dp_sgd", {"noise_multiplier": 1.0})) is None  # training-time: in the models
    assert defense_key(Component("rounding", {"d": 1})) == {"release_defense": "rounding", "params": {"d": 1}}
    # logit reweighting's outputs changed (raw logits, no label fix-up): its defended signals get new keys
    assert defense_key(Component("logit_reweighting")) == {"release_defense": "logit_reweighting", "params": {},
                                                           "version": 2}
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, 3, generator=g) + 4  # raw logits, not centred
    train = [torch.randn(20, 3, generator=g).double() + 4 for _ in range(2)]
    defs = [DEFENSES["logit_reweighting"]().fit(DefenseContext(t.log_softmax(-1), t.argmax(1), torch.empty(0, 3),
                                                               torch.empty(0, dtype=torch.long), 0, train_logits=t))
            for t in train]
    out = released(logits, defs)
    for k in range(2):  # model k's centroids, not the other's, on model k's raw logits
        z = logits[:, k].double()
        assert torch.allclose(out[:, k], defs[k].release_outputs(z.log_softmax(-1), z))
    z = logits[:, 1].double()
    assert not torch.allclose(defs[0].release_outputs(z.log_softmax(-1), z), out[:, 1])


# ---------------------------------------------------------------- utility rows: training time
def test_training_time_is_stored_with_the_model_and_read_back(reference_study, tmp_path):
    from overconf.core.cache import Cache
    from overconf.training.jobs import ClassifierJob, load_or_train
    from overconf.config import Recipe

    first, result, _ = reference_study
    secs = lambda res, setting: [r["value"] for r in res.rows if r["setting"] == setting
                                 and r["metric"] in ("train_seconds", "train_cpu_seconds")]
    trained_now = secs(first, "baseline")
    assert len(trained_now) == 2 and all(0 < v < 600 for v in trained_now)  # wall and CPU seconds
    # a cache hit reads the stored time back (the same value in every release-time setting)
    for setting in REF_SETTINGS:
        assert secs(result, setting) == trained_now
    # directly: stored, read back, NaN for an artifact stored before it was recorded; the key is unchanged
    g = torch.Generator().manual_seed(0)
    job = ClassifierJob("salem_cnn", Recipe(epochs=1, batch_size=16), 0,
                        torch.randint(0, 256, (32, 1, 28, 28), generator=g, dtype=torch.uint8),
                        torch.randint(0, 10, (32,), generator=g), torch.tensor([0.5]), torch.tensor([0.25]), 10,
                        params={"width": 4})
    cache = Cache(tmp_path / "c")
    t = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert math.isfinite(t.train_seconds) and t.train_seconds > 0 and 0 < t.train_cpu_seconds < 600
    again = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert (again.train_seconds, again.train_cpu_seconds) == (t.train_seconds, t.train_cpu_seconds)
    assert again.key == t.key
    stored = cache.load("models", t.key)
    del stored["train_seconds"], stored["train_cpu_seconds"]
    cache.save("models", t.key, stored)
    old = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert math.isnan(old.train_seconds) and math.isnan(old.train_cpu_seconds)


# ---------------------------------------------------------------- bootstrap statistics
def test_bootstrap_statistics_match_the_metrics_on_the_original_sample():
    from overconf.metrics import binary_auroc, binary_tpr_at_fpr
    from overconf.metrics.membership import advantage as roc_advantage, roc
    from overconf.report.defense_verdicts import advantage, auroc, tpr_at_fpr

    g = torch.Generator().manual_seed(1)
    for discrete in (False, True):  # ties (label-only scores are discrete)
        s_in = torch.randn(300, generator=g, dtype=torch.float64) + 0.5
        s_out = torch.randn(250, generator=g, dtype=torch.float64)
        if discrete:
            s_in, s_out = s_in.round(), s_out.round()
        assert auroc(s_in[None], s_out[None]).item() == pytest.approx(binary_auroc(s_in, s_out), abs=1e-12)
        for x in (0.01, 0.1):
            assert tpr_at_fpr(s_in[None], s_out[None], x).item() == pytest.approx(binary_tpr_at_fpr(s_in, s_out, x)[0])
        fpr, tpr, _ = roc(s_in, s_out)
        assert advantage(s_in[None], s_out[None]).item() == pytest.approx(roc_advantage(fpr, tpr), abs=1e-12)
    # batched rows are independent
    both = auroc(torch.stack([s_in, -s_in]), torch.stack([s_out, s_out]))
    assert both[0].item() == pytest.approx(binary_auroc(s_in, s_out)) and both[1].item() == pytest.approx(
        binary_auroc(-s_in, s_out))


# ---------------------------------------------------------------- FPR table, effects
def test_effect_labels():
    from overconf.report.defense_report import effect

    assert effect(-0.2, [-0.1, -0.06]) == "cuts OOD/GAN FPs"
    assert effect(-0.2, [0.0, -0.02]) == "cuts TPs only"
    assert effect(0.0, [0.1, 0.05]) == "raises FPs"
    assert effect(0.0, [0.01]) == "no clear change"
    assert effect(float("nan"), []) == "no clear change"


def _rows(setting, defense, tpr, fprs, acc, secs, auroc=0.6):
    base = {"model": "m", "seed": 0, "setting": setting, "defense": defense, "attacker": "same"}
    rows = [base | {"attack": "-", "source": "test", "metric": "accuracy", "value": acc},
            base | {"attack": "-", "source": "train", "metric": "accuracy", "value": 1.0},
            base | {"attack": "-", "source": "train", "metric": "train_seconds", "value": secs}]
    for src, fpr in fprs.items():
        rows += [base | {"attack": "loss", "source": src, "metric": k, "value": v}
                 for k, v in (("tpr", tpr), ("fpr", fpr), ("auroc", auroc), ("tpr_at_fpr_0.01", 0.02))]
    return rows


def test_fpr_table_changes_against_the_baseline_and_csv(tmp_path):
    from overconf.report.defense_report import defense_section, fpr_records, write_fpr_csv
    import csv

    rows = (_rows("baseline", "none", 0.8, {"test": 0.5, "digits": 0.6, "fake": 0.7}, 0.9, 10.0)
            + _rows("dp", "dp_sgd", 0.5, {"test": 0.4, "digits": 0.3, "fake": 0.4}, 0.6, 40.0)
            + _rows("top1", "top_k", 0.6, {"test": 0.5, "digits": 0.58, "fake": 0.7}, 0.9, 10.0))
    recs = {(r["setting"], r["source"]): r for r in fpr_records(rows)}
    assert recs[("dp", "digits")]["fpr_change"] == pytest.approx(-0.3)
    assert recs[("dp", "test")]["tpr_change"] == pytest.approx(-0.3)
    assert recs[("dp", "fake")]["effect"] == "cuts OOD/GAN FPs"
    assert recs[("top1", "fake")]["effect"] == "cuts TPs only"
    assert recs[("baseline", "test")]["effect"] == "no clear change"
    text, records = defense_section(rows)
    assert "cuts OOD/GAN FPs**: dp (loss)" in text and "cuts TPs only**: top1 (loss)" in text
    assert "0.400 (-0.300)" in text  # dp's digits FPR... and test TPR
    path = write_fpr_csv(records, tmp_path / "defense_fpr.csv")
    back = list(csv.DictReader(path.open()))
    assert len(back) == 9 and float(next(r for r in back if r["setting"] == "dp" and r["source"] == "digits")
                                     ["fpr_change"]) == pytest.approx(-0.3)
    assert defense_section([r | {"defense": "none"} for r in rows]) == ("", [])  # no defense: no section


def test_defense_figures_are_written(tmp_path):
    from overconf.report.defense_figures import defense_figures, defense_tensorboard, privacy_utility_points
    from overconf.report.defense_report import fpr_records

    rows = (_rows("baseline", "none", 0.8, {"test": 0.5, "digits": 0.6}, 0.9, 10.0, auroc=0.7)
            + _rows("dp", "dp_sgd", 0.5, {"test": 0.4, "digits": 0.3}, 0.6, 40.0, auroc=0.52))
    assert privacy_utility_points(rows, "m", "loss", "auroc") == [("baseline", 0.7, 0.9), ("dp", 0.52, 0.6)]
    paths = defense_figures(rows, fpr_records(rows), tmp_path / "figures")
    assert sorted(p.name for p in paths) == ["defense_fpr_m.png", "privacy_utility_auroc_m.png",
                                             "privacy_utility_tpr_at_fpr_0.01_m.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    defense_tensorboard(paths, tmp_path / "tb")
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def _dp_rows(setting="dp", eps=1.0, delta=1e-5, eps_1n=0.4, gn_cost=0.05):
    base = {"model": "m", "seed": 0, "setting": setting, "defense": "dp_sgd", "attacker": "same",
            "attack": "-", "source": "defense"}
    return [base | {"metric": k, "value": v} for k, v in (("epsilon", eps), ("delta", delta),
                                                          ("epsilon_delta_1_over_n", eps_1n),
                                                          ("dp_accuracy_cost_vs_groupnorm", gn_cost))]


def test_epsilon_is_never_printed_without_its_delta(tmp_path):
    """Issue 21: the utility table, figure labels and verdict lines give DP-SGD's epsilon with its delta
    (and the 1/n figure in the table); no bare 'epsilon 1' anywhere."""
    import re
    from overconf.report.defense_report import epsilon_text, setting_label, utility_markdown

    rows = (_rows("baseline", "none", 0.8, {"test": 0.5}, 0.9, 10.0)
            + _rows("dp", "dp_sgd", 0.5, {"test": 0.4}, 0.6, 40.0) + _dp_rows())
    assert epsilon_text(rows, "m", "dp") == "epsilon 1 at delta 1e-05 (0.4 at delta = 1/n)"
    assert setting_label(rows, "m", "dp") == "dp (eps 1, delta 1e-05)"
    assert setting_label(rows, "m", "baseline") == "baseline" and epsilon_text(rows, "m", "baseline") == ""
    table = "\n".join(utility_markdown(rows, "m"))
    assert "epsilon 1 at delta 1e-05 (0.4 at delta = 1/n)" in table and "| 0.050 |" in table  # DP cost vs GroupNorm
    bare = re.findall(r"\beps(?:ilon)? [0-9.]+(?! at delta|, delta)\b", table)
    assert not bare, bare


def test_dp_verdict_lines_name_epsilon_with_delta_and_the_cost_of_dp_alone():
    from types import SimpleNamespace
    from overconf.report.defense_verdicts import defense_verdicts

    g = torch.Generator().manual_seed(0)
    cells = [_cell("baseline", 2.0, 0.9, g), _cell("dp", 0.0, 0.5, g), _cell("l2", 1.2, 0.88, g)]
    rows = []
    for c, d in zip(cells, ("none", "dp_sgd", "l2")):
        rows += [{"model": "m", "seed": 0, "setting": c.setting, "defense": d, "attacker": "same", "attack": "loss",
                  "source": "test", "metric": "auroc", "value": 0.5},
                 {"model": "m", "seed": 0, "setting": c.setting, "defense": d, "attacker": "same", "attack": "-",
                  "source": "train", "metric": "train_seconds", "value": 10.0}]
    rows += _dp_rows(eps=8.0, gn_cost=0.125)
    lines = " ".join(next(ln for claim, _, ln in defense_verdicts(SimpleNamespace(rows=rows, cells=cells), "m")
                          if claim.startswith("DP-SGD")))
    assert "`dp (eps 8, delta 1e-05)`" in lines
    assert "cost of `dp`, epsilon 8 at delta 1e-05 (0.4 at delta = 1/n):" in lines  # with the 1/n figure
    assert "against the same GroupNorm model without DP: +0.125" in lines


# ---------------------------------------------------------------- verdicts on the seeds' claims
def _cell(setting, shift, acc, g, n=400, lo_scores=None):
    """A fake cell: loss scores with members shifted by ``shift``; test accuracy ``acc``."""
    from types import SimpleNamespace

    labels = torch.randint(0, 10, (n,), generator=g)
    wrong = torch.rand(n, generator=g) >= acc
    pred = torch.where(wrong, (labels + 1) % 10, labels)
    log_probs = torch.nn.functional.one_hot(pred, 10).double().mul(5).log_softmax(1)
    s_in, s_out = torch.randn(n, generator=g) + shift, torch.randn(n, generator=g)
    scores = {"loss": {"members": s_in, "test": s_out},
              "label_only_noise": lo_scores or {"members": (torch.arange(n) % 3).double(),
                                                "test": (torch.arange(n) % 2).double()}}
    return SimpleNamespace(model="m", setting=setting, seed=0, scores=scores,
                           member_index={"test": torch.arange(n)},
                           sources={"test": SimpleNamespace(log_probs=log_probs, labels=labels)})


def test_defense_verdicts_on_known_effects():
    from types import SimpleNamespace
    from overconf.report.defense_verdicts import defense_verdicts, defense_verdicts_markdown

    g = torch.Generator().manual_seed(0)
    base = _cell("baseline", 2.0, 0.9, g)
    flat = {"members": torch.zeros(400, dtype=torch.float64), "test": torch.zeros(400, dtype=torch.float64)}
    cells = [base, _cell("dp", 0.0, 0.5, g, lo_scores=flat), _cell("l2", 1.2, 0.88, g)]
    lr = _cell("lr", 1.2, 0.9, g)  # logit reweighting keeps every prediction: the baseline's outputs
    lr.sources = base.sources
    mg = _cell("mg", 1.5, 0.9, g, lo_scores=base.scores["label_only_noise"])
    mg.sources = base.sources
    cells += [lr, mg]
    defenses = {"baseline": ("none", 10.0), "dp": ("dp_sgd", 50.0), "l2": ("l2", 10.0),
                "lr": ("logit_reweighting", 10.0), "mg": ("memguard", 10.0)}
    rows = []
    for c in cells:
        d, secs = defenses[c.setting]
        rows += [{"model": "m", "seed": 0, "setting": c.setting, "defense": d, "attacker": "same", "attack": a,
                  "source": "test", "metric": "auroc", "value": 0.5} for a in ("loss", "label_only_noise")]
        rows.append({"model": "m", "seed": 0, "setting": c.setting, "defense": d, "attacker": "same",
                     "attack": "-", "source": "train", "metric": "train_seconds", "value": secs})
    result = SimpleNamespace(rows=rows, cells=cells)
    v = {claim.split()[0]: (status, lines) for claim, status, lines in defense_verdicts(result, "m")}
    assert v["logit"][0] == "holds", v["logit"]
    assert v["MemGuard"][0] == "holds", v["MemGuard"]
    # DP-SGD and L2 on the loss attack only (the fake label-only scores tie between settings)
    loss_only = SimpleNamespace(rows=[r for r in rows if r["attack"] != "label_only_noise"], cells=cells)
    v = {claim.split()[0]: (status, lines) for claim, status, lines in defense_verdicts(loss_only, "m")}
    assert v["DP-SGD"][0] == "holds", v["DP-SGD"]
    assert "x5.00" in " ".join(v["DP-SGD"][1])
    assert v["L2"][0] == "holds", v["L2"]
    v = {claim.split()[0]: status for claim, status, _ in defense_verdicts(  # DP no better than L2: fails
        SimpleNamespace(rows=loss_only.rows, cells=[c for c in cells if c.setting != "dp"] + [
            _cell("dp", 1.8, 0.5, g)]), "m")}
    assert v["DP-SGD"] == "does not hold" and v["L2"] == "holds"
    # and the other way round: a logit reweighting that changes predictions does not hold
    lr.sources = cells[1].sources
    v = {claim.split()[0]: status for claim, status, _ in defense_verdicts(result, "m")}
    assert v["logit"] == "does not hold"
    text = defense_verdicts_markdown(result)
    assert "paired bootstrap" in text and text.count("**") == 8
    # a label fix-up (keep_label: true) makes the accuracy unchanged by construction: not a finding
    lr.sources = base.sources
    fixed = SimpleNamespace(rows=rows + [{"model": "m", "seed": 0, "setting": "lr", "defense": "logit_reweighting",
                                          "attacker": "same", "attack": "-", "source": "defense",
                                          "metric": "label_swapped_fraction", "value": 0.02}], cells=cells)
    status, lines = next((st, ln) for claim, st, ln in defense_verdicts(fixed, "m") if claim.startswith("logit"))
    assert status == "inconclusive" and "by construction" in " ".join(lines), lines


def test_memguard_verdict_in_a_study(reference_study):
    from overconf.report.defense_verdicts import defense_verdicts

    _, result, _ = reference_study
    v = {claim.split()[0]: (status, lines) for claim, status, lines in defense_verdicts(result, result.cells[0].model)}
    assert v["MemGuard"][0] == "holds", v["MemGuard"]
    assert v["DP-SGD"][0] == "not tested in this run"


def test_report_of_a_defense_study(reference_study):
    from overconf.report import write_report

    first, result, _ = reference_study
    write_report(result)
    text = (result.run_dir / "summary.md").read_text()
    assert "## Defenses: utility, false positives per source" in text
    assert "### Verdicts: the seeds' defense claims" in text and "MemGuard does nothing" in text
    assert "| round_unaware | rounding | unaware |" in text
    csv_text = (result.run_dir / "defense_fpr.csv").read_text()
    assert csv_text.startswith("model,setting,defense,attacker,attack,source,tpr")
    write_report(first)  # no defense setting: no defense section, no CSV
    assert "Defenses:" not in (first.run_dir / "summary.md").read_text()
    assert not (first.run_dir / "defense_fpr.csv").exists()


def test_verdicts_over_seeds_decide_on_the_seed_level_interval_and_state_seeds_and_delta():
    """Issue 21: with several seeds the verdicts state the number of seeds and a Student-t interval over
    the per-seed differences (training randomness), which decides; each seed's evaluation sets alone
    (the sample bootstrap) would call a DP-SGD advantage that the seeds do not agree on."""
    import re
    from types import SimpleNamespace
    from scipy import stats
    from sklearn.metrics import roc_auc_score
    from overconf.report.defense_verdicts import defense_verdicts, defense_verdicts_markdown

    g = torch.Generator().manual_seed(3)
    cells, rows = [], []
    # loss-attack member shift per seed: DP-SGD is far below L2 on seeds 0 and 2, above it on seed 1
    shifts = {"baseline": (2.0, 2.0, 2.0), "dp": (0.0, 1.6, 0.2), "l2": (1.2, 1.2, 1.2)}
    defenses = {"baseline": "none", "dp": "dp_sgd", "l2": "l2"}
    for seed in range(3):
        for setting, sh in shifts.items():
            c = _cell(setting, sh[seed], 0.5 if setting == "dp" else 0.9, g)
            c.seed = seed
            cells.append(c)
            base = {"model": "m", "seed": seed, "setting": setting, "defense": defenses[setting], "attacker": "same"}
            rows += [base | {"attack": "loss", "source": "test", "metric": "auroc", "value": 0.5},
                     base | {"attack": "-", "source": "train", "metric": "train_seconds",
                             "value": 50.0 if setting == "dp" else 10.0}]
        rows += [r | {"seed": seed} for r in _dp_rows(eps=1.0, delta=1e-5, eps_1n=0.4)]
    result = SimpleNamespace(rows=rows, cells=cells)
    status, lines = next((st, ln) for claim, st, ln in defense_verdicts(result, "m") if claim.startswith("DP-SGD"))
    line = next(ln for ln in lines if ln.startswith("`loss` auroc"))
    # independent oracle: per-seed AUROC (scikit-learn), paired differences, scipy's Student-t interval
    auc = {(c.setting, c.seed): roc_auc_score([1] * 400 + [0] * 400,
                                              torch.cat([c.scores["loss"]["members"], c.scores["loss"]["test"]]))
           for c in cells}
    d = [auc[("dp", k)] - auc[("l2", k)] for k in range(3)]
    lo, hi = stats.t.interval(0.95, 2, loc=sum(d) / 3, scale=stats.sem(d))
    assert f"[{lo:+.3f}, {hi:+.3f}] over 3 seeds" in line, line
    boot = [float(x) for x in re.search(r"difference [+-][0-9.]+ \[([+-][0-9.]+), ([+-][0-9.]+)\]", line).groups()]
    assert boot[1] < 0 < hi  # the bootstrap alone excludes 0, the seeds do not: inconclusive, not "holds"
    assert line.endswith(": inconclusive") and status.startswith("protection inconclusive"), (status, lines)
    cost = next(ln for ln in lines if ln.startswith("cost of"))
    assert "epsilon 1 at delta 1e-05 (0.4 at delta = 1/n)" in cost and "over 3 seeds" in cost
    text = defense_verdicts_markdown(result)
    assert "with 3 seeds (0, 1, 2) the seed-level interval decides" in text
    # one seed: the bootstrap decides and the lines say there is no seed-level interval
    one = SimpleNamespace(rows=[r for r in rows if r["seed"] == 0], cells=[c for c in cells if c.seed == 0])
    status, lines = next((st, ln) for claim, st, ln in defense_verdicts(one, "m") if claim.startswith("DP-SGD"))
    line = next(ln for ln in lines if ln.startswith("`loss` auroc"))
    assert "1 seed: no seed-level interval" in line and line.endswith(": holds")
    assert "with 1 seed the bootstrap decides" in defense_verdicts_markdown(one)


def test_leakage_table_gives_seed_level_student_t_intervals():
    """The per-setting leakage table: mean and a 95% Student-t interval over seeds (scipy's t.interval),
    rates cut to [0, 1]; the mean alone with one seed."""
    import numpy as np
    from scipy import stats

    from overconf.report.defense_report import leakage_markdown, seed_interval_text

    vals = [0.63, 0.67, 0.667]
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=stats.sem(vals))
    assert seed_interval_text(vals) == f"{np.mean(vals):.3f} [{lo:.3f}, {hi:.3f}]"
    assert seed_interval_text([0.01, 0.2, 0.0]).split("[")[1].startswith("0.000")      # cut at 0
    assert seed_interval_text([0.5]) == "0.500"
    rows = []
    for seed, (acc, auc) in enumerate([(0.74, 0.63), (0.77, 0.67), (0.76, 0.667)]):
        base = {"model": "m", "seed": seed, "setting": "baseline", "source": "test"}
        rows += [dict(base, attack="-", metric="accuracy", value=acc), dict(base, attack="loss", metric="auroc", value=auc)]
    text = "\n".join(leakage_markdown(rows, "m"))
    assert "over 3 seed(s) (0, 1, 2" in text
    assert f"| baseline | {seed_interval_text([0.74, 0.77, 0.76])} | {seed_interval_text(vals)} |" in text
