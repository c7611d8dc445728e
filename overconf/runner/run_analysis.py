"""Running analyses (overconf.analysis) on a study: after the study (its ``analysis:`` section) or
on a finished run folder (``overconf analyze RUN_DIR``, ``overconf.analyze``).

For every seed the splits and sources are rebuilt as in the study, and for every (model, setting)
an :class:`~overconf.analysis.AnalysisContext` is handed to each selected analysis. Models and
outputs come from the cache (the study stored them); nothing is retrained unless an analysis
declares it. Results go to ``RUN_DIR/analysis/`` (overconf.analysis.output).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overconf.analysis import ANALYSES, AnalysisContext, AnalysisResult
from overconf.analysis.output import write_markdown, write_result, write_rows
from overconf.config import StudyConfig
from overconf.data import load_dataset
from overconf.defenses.release import defend
from overconf.core.errors import ConfigError
from overconf.runner.run_folder import STATUS
from overconf.runner.seed_jobs import SeedJobs
from overconf.core.seeding import derive_seed

log = logging.getLogger("overconf")


@dataclass
class AnalysisRun:
    """What ``overconf analyze`` produced."""

    run_dir: Path
    rows: list[dict[str, Any]]
    results: dict[str, dict[tuple[int, str, str], AnalysisResult]]
    """analysis -> (seed, model, setting) -> result"""
    combined: dict[str, AnalysisResult] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def selected(cfg: StudyConfig, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """name -> parameters (defaults filled in, checked) of the analyses to run: ``only`` (with the
    config's parameters where it has them) or every entry of the ``analysis:`` section."""
    names = list(only) if only else list(cfg.analysis)
    if not names:
        raise ConfigError("no analysis to run: the config has no 'analysis:' section; name one with --only "
                          f"NAME (allowed: {', '.join(ANALYSES.names())}) or add e.g. analysis: {{vulnerability: {{}}}}")
    out = {}
    for name in names:
        analysis = ANALYSES.get(name, where="--only" if only else f"analysis.{name}")()
        params = analysis.params(cfg.analysis.get(name))
        analysis.check(params)
        out[name] = params
    return out


def check_run_folder(run_dir: Path) -> None:
    import json

    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"'{run_dir}' is not an overconf run folder (no config.yaml); give a folder that "
                          f"'overconf run' wrote")
    if (run_dir / "audit.yaml").exists():  # never imports the user's code from a run folder
        raise ConfigError(f"'{run_dir}' is an audit (overconf audit); the analyses run on study runs only")
    if (run_dir / STATUS).exists():
        status = json.loads((run_dir / STATUS).read_text()).get("status")
        if status != "complete":
            raise ConfigError(f"run '{run_dir}' is not complete (status.json: {status}); run the study again "
                              f"(it resumes from the cache) before analysing it")


def contexts(run, per_sample: dict | None = None):
    """Every (seed, model, setting) of a study run as an :class:`AnalysisContext`, in the study's order.
    ``run``: an :class:`overconf.runner.seed_jobs.StudyRun` (cfg, cache, device, run_dir, attacks, dataset or
    None); per seed a :class:`overconf.runner.seed_jobs.SeedJobs` builds the splits, sources and jobs."""
    cfg = run.cfg
    dataset = run.dataset if run.dataset is not None else load_dataset(cfg.data.dataset, cfg.data.root,
                                                                        cfg.data.download)
    for seed in cfg.seeds:
        seed_jobs = SeedJobs.build(cfg, dataset, seed, run.cache, run.device, run.attacks, run.run_dir)
        sources = seed_jobs.build_sources()
        for model in cfg.models:
            for i, setting in enumerate(cfg.settings):
                roles = {"target": setting, "shadow": seed_jobs.shadow_setting(setting)}
                jobs = {r: seed_jobs.job(r, model, s) for r, s in roles.items()}
                cell = (per_sample or {}).get(f"{model.label}/{setting.name}/s{seed}")
                yield AnalysisContext(seed, model.label, setting.name, seed_jobs.context, cfg, model, setting, i,
                                      jobs, sources, seed_jobs.attacks, _release_fn(seed_jobs, roles),
                                      Path(run.run_dir), cell)


def _release_fn(seed_jobs: SeedJobs, roles: dict):
    """The study's calibration and release-time defense of a role (overconf.runner.study.Study.evaluate)."""
    seed = seed_jobs.seed

    def release(ctx: AnalysisContext, role: str):
        s = roles[role]
        outs = {"train": ctx.outputs(role, "train"), "calibration": ctx.outputs(role, "calibration")}
        comp = s.calibration if role == "target" else (s.shadow_calibration or s.calibration)
        cal = seed_jobs.calibration(comp, ctx.trained(role), outs, role)
        return defend(cal, s.defense, outs["train"], outs["calibration"], derive_seed(seed, "defense", role))

    return release


def run_analyses(run, only: list[str] | None = None, per_sample: dict | None = None) -> AnalysisRun:
    """Run the selected analyses on every context of ``run`` (an :class:`overconf.runner.seed_jobs.StudyRun`)
    and write ``RUN_DIR/analysis/``."""
    cfg, run_dir = run.cfg, Path(run.run_dir)
    chosen = selected(cfg, only)
    if per_sample is None and (run_dir / "per_sample.pt").exists():
        from overconf.report.runs import read_per_sample

        per_sample = read_per_sample(run_dir)
    hits, misses = run.cache.hits, run.cache.misses
    analyses = {name: ANALYSES[name]() for name in chosen}
    results: dict[str, dict] = {name: {} for name in chosen}
    rows: list[dict] = []
    sections: dict[str, list[str]] = {name: [] for name in chosen}
    tensorboard = cfg.report.tensorboard
    for ctx in contexts(run, per_sample):
        for name, analysis in analyses.items():
            log.info("analysis %s: %s / %s / seed %d", name, ctx.model, ctx.setting, ctx.seed)
            res = analysis.run(ctx, chosen[name])
            results[name][ctx.key] = res
            base = {"analysis": name, "model": ctx.model, "seed": ctx.seed, "setting": ctx.setting}
            rows += [base | r for r in res.rows]
            write_result(run_dir, name, ctx.tag, res, tensorboard)
            if res.markdown:
                sections[name].append(f"### {ctx.model} / {ctx.setting} / seed {ctx.seed}\n\n{res.markdown}")
    combined, summaries = {}, []
    for name, analysis in analyses.items():
        res = analysis.combine(results[name], chosen[name])
        if res is not None:
            combined[name] = res
            rows += [{"analysis": name, "model": "*", "seed": -1, "setting": "*"} | r for r in res.rows]
            write_result(run_dir, name, "all", res, tensorboard)
            if res.markdown:
                sections[name].insert(0, res.markdown)
            summaries.append(res.summary)
    write_rows(run_dir, rows)
    md = [f"## {analyses[n].title or n}\n\n" + "\n\n".join(sections[n]) for n in chosen]
    write_markdown(run_dir, md, tuple(summaries))
    return AnalysisRun(run_dir, rows, results, combined, run.cache.hits - hits, run.cache.misses - misses)
