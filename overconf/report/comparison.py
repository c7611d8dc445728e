"""Side-by-side comparison of settings (calibration methods, regularisers) across run folders.

Reads each run's config.yaml (parsed by overconf.config into the typed StudyConfig: what every
setting is, its sweep), results.json (tidy rows) and
per_sample.pt (max scores and test-set probabilities); nothing is recomputed from a model. One
entry per (run, model, setting): test accuracy, ECE, overconfidence error, mean max confidence
per input set, and for one attack (the threshold attack ``max_score`` unless told otherwise):
TPR, FPR on test, AUROC and TPR at 1% FPR against the test source, FPR per source, the mean FPR
over OOD / noise / transformed sources (every source but ``test`` and ``fake*``), the mean FPR
over GAN sources (``fake*``) and the Wasserstein-1 distance between the max-score distributions
of each source and of the members (scipy.stats.wasserstein_distance).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy.stats import wasserstein_distance


from overconf.core.errors import OverconfError
from .runs import ROW_KEYS, RunData, SettingInfo, check_complete, load_run, setting_infos  # noqa: F401
from .tables import Table, ordered

log = logging.getLogger("overconf")

DEFAULT_ATTACK = "max_score"
TPR_AT = "tpr_at_fpr_0.01"


def source_group(label: str) -> str:
    """'test' (unseen in-distribution), 'fake' (GAN samples, ``fake*``) or 'ood' (the rest:
    natural OOD, noise and transformed inputs)."""
    if label == "test":
        return "test"
    return "fake" if label.startswith("fake") else "ood"


@dataclass
class Entry:
    """One (run, model, setting) of the comparison."""

    run: str
    model: str
    info: SettingInfo
    values: dict[str, float]
    """test_accuracy, ece, overconfidence_error, tpr, fpr_test, auroc, tpr_at_1pct_fpr,
    mean_ood_fpr, fake_fpr, mmc:<set>, fpr:<source>, wasserstein:<source>"""
    samples: dict[str, Any]
    """pooled over seeds: max_score {members | source: tensor}, test_probs, test_labels"""
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)
    """seed -> value of auroc, mean_ood_fpr, fake_fpr and fpr:<source> (what verdicts test); empty:
    ``values`` is one run's"""

    @property
    def setting(self) -> str:
        return self.info.name


@dataclass
class Comparison:
    entries: list[Entry]
    attack: str
    sources: list[str]
    baseline: str | None
    multi_run: bool
    notes: list[str] = field(default_factory=list)
    """what the comparison left out (sources not in every run), printed with the tables"""
    dataset: str | None = None

    def label(self, e: Entry) -> str:
        return f"{e.run}/{e.setting}" if self.multi_run else e.setting

    def models(self) -> list[str]:
        return list(dict.fromkeys(e.model for e in self.entries))

    def baseline_for(self, e: Entry) -> Entry | None:
        """The baseline entry of the same run and model (else of the same model in any run)."""
        same = [b for b in self.entries if b.model == e.model and b.setting == self.baseline]
        return next((b for b in same if b.run == e.run), same[0] if same else None)

    @property
    def ood_sources(self) -> list[str]:
        return [s for s in self.sources if source_group(s) == "ood"]

    @property
    def fake_sources(self) -> list[str]:
        return [s for s in self.sources if source_group(s) == "fake"]


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _pooled_samples(per_sample: dict, model: str, setting: str) -> dict[str, Any]:
    cells = [c for c in per_sample.values() if c["model"] == model and c["setting"] == setting]
    if not cells:
        return {"max_score": {}, "test_probs": None, "test_labels": None}
    names = ["members"] + list(cells[0]["sources"])

    def part(cell, name):
        return cell["members"] if name == "members" else cell["sources"].get(name)

    max_score = {n: torch.cat([part(c, n)["max_score"].double() for c in cells if part(c, n) is not None])
                 for n in names}
    ref = "test" if "test" in cells[0]["sources"] else None
    probs = torch.cat([c["sources"][ref]["probs"].double() for c in cells]) if ref else None
    labels = torch.cat([c["sources"][ref]["labels"] for c in cells]) if ref else None
    return {"max_score": max_score, "test_probs": probs, "test_labels": labels}


def _per_seed(rows: list[dict], model: str, setting: str, attack: str, sources: list[str],
              ref: str | None) -> dict[str, dict[int, float]]:
    """Per-seed values of the metrics the verdicts test (intervals over seeds)."""
    out: dict[str, dict[int, float]] = {}
    for seed in sorted({r["seed"] for r in rows if (r["model"], r["setting"]) == (model, setting)}):
        t = Table(r for r in rows if (r["model"], r["setting"], r["seed"]) == (model, setting, seed))
        fpr = {s: _mean(t.get(model, setting, attack, s, "fpr")) for s in sources}
        values = {"auroc": _mean(t.get(model, setting, attack, ref, "auroc")),
                  "mean_ood_fpr": _mean([f for s, f in fpr.items() if source_group(s) == "ood"]),
                  "fake_fpr": _mean([f for s, f in fpr.items() if source_group(s) == "fake"])}
        values |= {f"fpr:{s}": f for s, f in fpr.items()}
        for k, v in values.items():
            out.setdefault(k, {})[seed] = v
    return out


def run_labels(runs: list[RunData]) -> list[str]:
    """Each run's label: the shortest suffix of its resolved folder's path that no other run's
    path ends with at the same length (``exp1/r`` and ``exp2/r`` for two runs named ``r``)."""
    parts = [run.run_dir.resolve().parts for run in runs]

    def suffix(p: tuple[str, ...], n: int) -> tuple[str, ...]:
        return p[-n:] if n < len(p) else p

    labels = []
    for i, p in enumerate(parts):
        n = next(n for n in range(1, len(p) + 1)
                 if all(suffix(q, n) != suffix(p, n) for j, q in enumerate(parts) if j != i))
        labels.append("/".join(suffix(p, n)) if n < len(p) else str(Path(*p)))
    return labels


def run_entries(run: RunData, attack: str, label: str | None = None) -> tuple[list[Entry], list[str]]:
    """The entries of ``run`` (labelled ``label``, default its folder's name) and its sources."""
    t = Table(run.rows)
    infos = setting_infos(run.config)
    sources = [s for s in ordered([r for r in run.rows if r["attack"] == attack], "source") if s != "shadow"]
    ref = "test" if "test" in sources else (sources[0] if sources else None)
    entries = []
    for model in ordered(run.rows, "model"):
        for setting in ordered([r for r in run.rows if r["model"] == model], "setting"):
            def v(a, src, metric):
                return _mean(t.get(model, setting, a, src, metric))

            fpr = {s: v(attack, s, "fpr") for s in sources}
            values = {"test_accuracy": v("-", "test", "accuracy"), "ece": v("-", "test", "ece"),
                      "overconfidence_error": v("-", "test", "overconfidence_error"),
                      "tpr": v(attack, ref, "tpr"), "fpr_test": fpr.get("test", float("nan")),
                      "auroc": v(attack, ref, "auroc"), "tpr_at_1pct_fpr": v(attack, ref, TPR_AT),
                      "mean_ood_fpr": _mean([f for s, f in fpr.items() if source_group(s) == "ood"]),
                      "fake_fpr": _mean([f for s, f in fpr.items() if source_group(s) == "fake"])}
            values |= {f"mmc:{s}": v("-", s, "mean_max_score") for s in ["members"] + sources}
            values |= {f"fpr:{s}": f for s, f in fpr.items()}
            samples = _pooled_samples(run.per_sample, model, setting)
            ms = samples["max_score"]
            values |= {f"wasserstein:{s}": float(wasserstein_distance(ms["members"].numpy(), ms[s].numpy()))
                       if "members" in ms and s in ms and len(ms[s]) else float("nan") for s in sources}
            info = infos.get(setting, SettingInfo(setting))
            entries.append(Entry(label or run.name, model, info, values, samples,
                                 _per_seed(run.rows, model, setting, attack, sources, ref)))
    return entries, sources


def build_comparison(runs: list[RunData], attack: str | None = None, baseline: str | None = None) -> Comparison:
    """Entries of every (run, model, setting); ``attack`` defaults to max_score (else the first)."""
    attacks = ordered([r for run in runs for r in run.rows], "attack", exclude=("-",))
    if not attacks:
        raise OverconfError("the runs hold no attack results; run a study with at least one attack")
    attack = attack or (DEFAULT_ATTACK if DEFAULT_ATTACK in attacks else attacks[0])
    if attack not in attacks:
        raise OverconfError(f"attack '{attack}' is not in the runs; they hold: {', '.join(attacks)}")
    paths = [run.run_dir.resolve() for run in runs]
    twice = next((run.run_dir for run, p in zip(runs, paths) if paths.count(p) > 1), None)
    if twice is not None:
        raise OverconfError(f"run folder '{twice}' is given twice; list each run once")
    labels = run_labels(runs)
    datasets = {label: run.dataset for label, run in zip(labels, runs)}  # one per run: labels are distinct
    if len(set(datasets.values())) > 1:
        raise OverconfError(
            "the runs are on different datasets (" + ", ".join(f"{k}: {v}" for k, v in datasets.items())
            + "), whose rates cannot be pooled into one comparison or verdict; compare the runs of one "
              "dataset at a time")
    entries, per_run = [], []
    for run, label in zip(runs, labels):
        e, s = run_entries(run, attack, label)
        entries += e
        per_run.append((label, s))
    sources = [x for x in per_run[0][1] if all(x in s for _, s in per_run)] if per_run else []
    notes = []
    left_out = list(dict.fromkeys(x for _, s in per_run for x in s if x not in sources))
    if left_out:
        where = "; ".join(f"{x} (only in {', '.join(n for n, s in per_run if x in s)})" for x in left_out)
        notes.append(f"Sources not in every run are left out, so every column and mean covers the same "
                     f"sources: {where}.")
        for e in entries:  # means over the common sources only
            fpr = [e.values[f"fpr:{x}"] for x in sources]
            e.values["mean_ood_fpr"] = _mean([f for x, f in zip(sources, fpr) if source_group(x) == "ood"])
            e.values["fake_fpr"] = _mean([f for x, f in zip(sources, fpr) if source_group(x) == "fake"])
    settings = [e.setting for e in entries]
    if baseline is None:
        plain = [e.setting for e in entries if e.info.kind == "baseline"]
        baseline = "baseline" if "baseline" in settings else (plain[0] if plain else None)
    elif baseline not in settings:
        raise OverconfError(f"--baseline '{baseline}' is not a setting of the runs; settings: "
                            f"{', '.join(dict.fromkeys(settings))}")
    return Comparison(entries, attack, sources, baseline, len(runs) > 1, notes, next(iter(datasets.values()), None))


# ----------------------------------------------------------------------------- tables
