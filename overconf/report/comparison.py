"""Side-by-side comparison of settings (calibration methods, regularisers) across run folders.

Reads each run's config.yaml (what every setting is, its sweep), results.json (tidy rows) and
per_sample.pt (max scores and test-set probabilities); nothing is recomputed from a model. One
entry per (run, model, setting): test accuracy, ECE, overconfidence error, mean max confidence
per input set, and for one attack (the threshold attack ``max_score`` unless told otherwise):
TPR, FPR on test, AUROC and TPR at 1% FPR against the test source, FPR per source, the mean FPR
over OOD / noise / transformed sources (every source but ``test`` and ``fake*``), the mean FPR
over GAN sources (``fake*``) and the Wasserstein-1 distance between the max-score distributions
of each source and of the members (scipy.stats.wasserstein_distance).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy.stats import wasserstein_distance

from ..cache import atomic_write_text
from ..errors import ConfigError, DataError, IncompleteRunError, OverconfError
from ..yamlio import load_yaml
from .tables import Table, markdown_table, ordered

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
class RunData:
    run_dir: Path
    config: dict[str, Any]
    rows: list[dict]
    per_sample: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def dataset(self) -> str:
        """The run's data.dataset (``?`` if its config.yaml does not say)."""
        data = self.config.get("data")
        return str(data.get("dataset", "?")) if isinstance(data, dict) else "?"


ROW_KEYS = ("model", "setting", "attack", "source", "metric", "value")


def _damaged(run_dir: Path, name: str, why: str) -> DataError:
    return DataError(f"'{run_dir / name}' is damaged ({why}); re-run the study ('overconf run' with its "
                     f"config.yaml: cached models and outputs make that quick) or leave this run out")


def check_complete(run_dir: Path) -> None:
    """Refuse a run whose status.json is not 'complete' (failed, interrupted, killed or still
    running); a folder without status.json predates status files and is read as before."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except FileNotFoundError:
        status = None
    except (OSError, ValueError):
        status = {"status": "unreadable status.json"}
    if status is not None and not isinstance(status, dict):
        status = {"status": "unreadable status.json"}
    if status is None:
        log.warning("'%s' has no status.json (written by an older overconf): assuming it finished", run_dir)
    elif status.get("status") != "complete":
        detail = {"running": f"still running or killed (started {status.get('started', '?')}, "
                             f"pid {status.get('pid', '?')})"}.get(status.get("status"), status.get("status"))
        if status.get("error"):
            detail += f": {status['error']}"
        raise IncompleteRunError(f"'{run_dir}' is not a finished run ({detail}); wait for it, or run it again "
                                 f"with 'overconf run CONFIG --out {run_dir} --overwrite', or leave it out")


def load_run(run_dir: str | Path, *, require_complete: bool = True) -> RunData:
    """config.yaml + results.json + per_sample.pt of a finished ``overconf run``; a missing or
    damaged file is an error naming it, an unfinished run is refused (``require_complete``)."""
    from .per_sample import load_per_sample

    run_dir = Path(run_dir)
    if require_complete:
        check_complete(run_dir)
    for name in ("config.yaml", "results.json", "per_sample.pt"):
        if not (run_dir / name).is_file():
            raise OverconfError(f"'{run_dir}' holds no {name}: pass the folder of a finished 'overconf run'")
    try:
        config = load_yaml((run_dir / "config.yaml").read_text(), f"'{run_dir / 'config.yaml'}'") or {}
    except (ConfigError, UnicodeDecodeError) as e:
        raise _damaged(run_dir, "config.yaml", str(e)) from None
    if not isinstance(config, dict):
        raise _damaged(run_dir, "config.yaml", "not a mapping of keys")
    try:
        rows = json.loads((run_dir / "results.json").read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise _damaged(run_dir, "results.json", f"not valid JSON: {e}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in ROW_KEYS) for r in rows):
        raise _damaged(run_dir, "results.json", f"not a list of rows with keys {', '.join(ROW_KEYS)}")
    try:
        per_sample = load_per_sample(run_dir / "per_sample.pt")
    except Exception as e:  # torch.load: UnpicklingError, RuntimeError, EOFError, ... on a damaged file
        raise _damaged(run_dir, "per_sample.pt", f"{type(e).__name__}: {e}") from None
    if not isinstance(per_sample, dict):
        raise _damaged(run_dir, "per_sample.pt", "not a mapping of cells")
    return RunData(run_dir, config, rows, per_sample)


@dataclass
class SettingInfo:
    """What a setting does, read from a run's config.yaml."""

    name: str
    recipe: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    attacker: str = "same"
    sweep: str | None = None
    sweep_value: Any = None

    @property
    def kind(self) -> str:
        """baseline | label_smoothing | weight_decay | dropout | temperature | llla |
        attacker_uncalibrated | other (a 'pure' setting changes one thing only)."""
        cal = self.calibration.get("name", "none")
        if self.attacker != "same":
            return "attacker_uncalibrated"
        if not self.recipe:
            return {"none": "baseline", "temperature": "temperature", "llla": "llla"}.get(cal, "other")
        if cal == "none" and len(self.recipe) == 1:
            (key,) = self.recipe
            if key in ("label_smoothing", "weight_decay", "dropout"):
                return key
        return "other"

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.recipe.items()]
        cal = self.calibration
        if cal.get("name", "none") != "none":
            parts.append(cal["name"] + "(" + ", ".join(f"{k}={v}" for k, v in cal.items() if k != "name") + ")")
        if self.attacker != "same":
            parts.append(f"attacker {self.attacker}")
        return "; ".join(parts) or "no change"


def setting_infos(config: dict[str, Any]) -> dict[str, SettingInfo]:
    out = {}
    for name, body in (config.get("settings") or {}).items():
        body = body or {}
        cal = body.get("calibration") or {"name": "none"}
        out[str(name)] = SettingInfo(str(name), dict(body.get("recipe") or {}),
                                     cal if isinstance(cal, dict) else {"name": cal},
                                     body.get("attacker", "same"), body.get("sweep"), body.get("sweep_value"))
    return out


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


def run_entries(run: RunData, attack: str) -> tuple[list[Entry], list[str]]:
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
            entries.append(Entry(run.name, model, info, values, samples,
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
    datasets = {run.name: run.dataset for run in runs}
    if len(set(datasets.values())) > 1:
        raise OverconfError(
            "the runs are on different datasets (" + ", ".join(f"{k}: {v}" for k, v in datasets.items())
            + "), whose rates cannot be pooled into one comparison or verdict; compare the runs of one "
              "dataset at a time")
    entries, per_run = [], []
    for run in runs:
        e, s = run_entries(run, attack)
        entries += e
        per_run.append((run.name, s))
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


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def model_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    sets = ["members"] + c.sources
    header = ["model", "setting", "sweep", "test acc", "ECE", "OE"] + [f"MMC {s}" for s in sets]
    body = [[e.model, c.label(e), _sweep(e), _f(e.values["test_accuracy"]), _f(e.values["ece"]),
             _f(e.values["overconfidence_error"])] + [_f(e.values[f"mmc:{s}"], 4) for s in sets]
            for e in c.entries]
    return header, body


def attack_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    others = [s for s in c.sources if s != "test"]
    header = (["model", "setting", "TPR", "FPR test", "AUROC", "TPR@1%FPR"] + [f"FPR {s}" for s in others]
              + ["mean OOD FPR"] + (["fake FPR"] if c.fake_sources else []))
    body = []
    for e in c.entries:
        v = e.values
        body.append([e.model, c.label(e), _f(v["tpr"]), _f(v["fpr_test"]), _f(v["auroc"]), _f(v["tpr_at_1pct_fpr"])]
                    + [_f(v[f"fpr:{s}"]) for s in others] + [_f(v["mean_ood_fpr"])]
                    + ([_f(v["fake_fpr"])] if c.fake_sources else []))
    return header, body


def wasserstein_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["model", "setting"] + [f"W1 {s}" for s in c.sources]
    return header, [[e.model, c.label(e)] + [_f(e.values[f"wasserstein:{s}"], 4) for s in c.sources]
                    for e in c.entries]


def _sweep(e: Entry) -> str:
    if e.info.sweep is None:
        return ""
    return f"{e.info.sweep}={e.info.sweep_value}" if e.info.sweep_value is not None else e.info.sweep


def comparison_markdown(c: Comparison, figures: list[Path] = (), relative_to: Path | None = None,
                        level: int = 1) -> str:
    from .verdicts import verdicts_markdown

    h = "#" * level
    out = [f"{h} Calibration comparison: overconfidence vs leakage", "",
           (f"Dataset: `{c.dataset}`. " if c.dataset else "")
           + f"Attack: `{c.attack}` (fitted on each setting's shadow model, applied to its target). "
           f"Mean OOD FPR = mean over {', '.join(c.ood_sources) or '(no OOD sources)'}"
           + (f"; fake FPR = mean over {', '.join(c.fake_sources)}" if c.fake_sources else "")
           + (f". Baseline: `{c.baseline}`." if c.baseline else ". No baseline setting."), "",
           *[x for note in c.notes for x in (f"Note: {note}", "")],
           f"{h}# Settings", ""]
    seen = {}
    for e in c.entries:
        seen.setdefault(c.label(e), e.info.describe())
    out += [markdown_table(["setting", "what it changes"], [[k, v] for k, v in seen.items()]), ""]
    out += [f"{h}# Model calibration and confidence (MMC: mean max confidence)", "",
            markdown_table(*model_table(c)), "",
            f"{h}# Membership inference ({c.attack}); FPR per non-member source", "",
            markdown_table(*attack_table(c)), "",
            f"{h}# Wasserstein-1 distance between the max-score distributions of members and each source", "",
            markdown_table(*wasserstein_table(c)), "",
            verdicts_markdown(c, level + 1), ""]
    if figures:
        out += [f"{h}# Figures", ""]
        for p in figures:
            rel = Path(os.path.relpath(p, relative_to)) if relative_to is not None else p
            out.append(f"- ![{p.stem}]({rel.as_posix()})")
        out.append("")
    return "\n".join(out)


def comparison_csv(c: Comparison) -> str:
    keys = list(dict.fromkeys(k for e in c.entries for k in e.values))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "model", "setting", "kind", "sweep", "sweep_value", "attack"] + keys)
    for e in c.entries:
        w.writerow([e.run, e.model, e.setting, e.info.kind, e.info.sweep or "", "" if e.info.sweep_value is None
                    else e.info.sweep_value, c.attack] + [e.values.get(k, float("nan")) for k in keys])
    return buf.getvalue()


def write_comparison(runs: list[RunData], out_dir: str | Path, *, attack: str | None = None,
                     baseline: str | None = None, figures: bool = True,
                     figures_dir: str | Path | None = None, level: int = 1,
                     cache=None) -> tuple[Comparison, str]:
    """comparison.md, comparison.csv and the comparison figures; returns the comparison and its
    Markdown. Figures already drawn with the same content come from ``cache`` (a Cache), if given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = build_comparison(runs, attack, baseline)
    paths: list[Path] = []
    if figures:
        from .comparison_figures import comparison_figures

        paths = comparison_figures(c, Path(figures_dir) if figures_dir is not None else out_dir / "figures", cache)
    text = comparison_markdown(c, paths, relative_to=out_dir, level=level)
    atomic_write_text(out_dir / "comparison.md", text)
    atomic_write_text(out_dir / "comparison.csv", comparison_csv(c))
    return c, text
