"""Run a study: config -> splits and sources -> trained target/shadow models (cached) -> outputs
per (model, source) (cached) -> calibration -> attacks fitted on the shadow and applied to the
target -> tidy result rows and per-sample scores -> report.

The grid is seeds x models x settings. Every setting trains (or loads) its own target and
shadow with the setting's recipe; post-hoc calibrations are fitted per model on the held-out
calibration split. Attacks are fitted on the shadow model's members vs non-members only.

Run folders and status.json: overconf.runner.run_folder; cells, the result and its rows: overconf.runner.cells;
one seed's jobs, sources and calibrations (SeedJobs, also the executor's and analyses' input): overconf.runner.seed_jobs.
Components receive a frozen per-seed :class:`~overconf.signals.contexts.SeedContext`, never the Study.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
from pathlib import Path

import torch
import yaml

from overconf.runner import catalog as _catalog  # noqa: F401  (registers every built-in member and hook)
from overconf.attacks import ATTACKS, Attack, Signals
from overconf.core.cache import Cache, atomic_write_text, check_writable
from overconf.calibrations import Calibration
from overconf.config import Component, ModelSpec, Setting, StudyConfig
from overconf.signals.contexts import SeedContext
from overconf.data import SourceData, Splits, load_dataset
from overconf.defenses.release import defend, defense_info
from overconf.defenses.training import training_defense_info
from overconf.core.device import fixed_threads
from overconf.defenses.groupnorm_baseline import groupnorm_job, groupnorm_rows, needs_groupnorm_baseline
from overconf.core.device import resolve_device
from overconf.runner.blind_baseline import blind_rows
from overconf.runner.cells import NO_ATTACK, Cell, StudyResult, attack_rows, model_rows, row
from overconf.runner.executor import make_executor, prepare_seed
from overconf.signals.cell_hooks import CellContext, run_cell_hooks
from overconf.signals.outputs import Outputs, cached_outputs
from overconf.runner.run_analysis import run_analyses
from overconf.runner.run_folder import OUTPUT_FIX, STATUS, create_run_dir, default_run_dir, write_status
from overconf.config.row_columns import setting_columns
from overconf.core.seeding import derive_seed, generator
from overconf.runner.seed_jobs import SeedJobs, StudyRun, seed_context
from overconf.signals.producers import SignalContext, as_request, cached_signal
from overconf.training.jobs import ClassifierJob, TrainedClassifier, load_or_train

log = logging.getLogger("overconf")

CHANCE_MARGIN = 0.05
"""a model whose test accuracy is at most 1/K + CHANCE_MARGIN is reported as at chance level"""


class Study:
    """One study run. ``Study(cfg).run()`` trains what is missing and writes the report."""

    def __init__(self, cfg: StudyConfig, run_dir: str | Path | None = None, cache: Cache | None = None,
                 *, overwrite: bool = False):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.cache = cache or Cache(cfg.cache_dir)
        self.requested_run_dir = run_dir
        self.overwrite = overwrite
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
        """the run folder; the one actually created is set by :meth:`run`"""
        self.warnings: list[str] = []
        self.attacks: list[Attack] = [ATTACKS[c.name](**c.params) for c in cfg.attacks]
        self.dataset = None
        self.splits: Splits | None = None
        self.seed: int | None = None
        self.context: SeedContext | None = None
        """the current seed's context: what sources, signals, attacks and hooks read"""
        self.jobs: SeedJobs | None = None
        """the current seed's jobs (overconf.runner.seed_jobs), built on ``context``"""
        self._ray_executor = None

    # ------------------------------------------------------------------ top level
    @fixed_threads  # results independent of torch.set_num_threads (overconf.core.device.COMPUTE_THREADS)
    def run(self, report: bool = True) -> StudyResult:
        """Check that the cache can be written, claim a new run folder, run the grid, write the
        report, and mark the run complete last; a failure marks it failed (status.json)."""
        self.cache.check_writable()  # a read-only or full cache fails now, not after the first training
        self.run_dir = create_run_dir(self.cfg, self.requested_run_dir, overwrite=self.overwrite)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        try:
            check_writable(self.run_dir, "output folder", OUTPUT_FIX)
            write_status(self.run_dir, "running", started=started, pid=os.getpid())
            result = self._run(report)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            with contextlib.suppress(OSError):
                write_status(self.run_dir, "interrupted" if interrupted else "failed", started=started,
                             finished=datetime.datetime.now().isoformat(timespec="seconds"), error=error)
            log.error("run %s %s (%s); marked in %s; models already trained stay cached", self.run_dir,
                      "interrupted" if interrupted else "failed", type(e).__name__, self.run_dir / STATUS)
            raise
        write_status(self.run_dir, "complete", started=started,
                     finished=datetime.datetime.now().isoformat(timespec="seconds"), warnings=self.warnings)
        return result

    def _run(self, report: bool) -> StudyResult:
        cfg = self.cfg
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if self.dataset is None:  # an audit (overconf.runner.audit) brings its own
            self.dataset = load_dataset(cfg.data.dataset, cfg.data.root, cfg.data.download)
        rows: list[dict] = []
        cells: list[Cell] = []
        images: dict = {}
        for seed in cfg.seeds:
            self.seed = seed
            self.jobs = self.build_jobs(seed)
            self.splits, self.context = self.jobs.splits, self.jobs.context
            self.jobs.check()  # sizes, attacks and signal producers, before any training
            self._ray_executor = self._ray_executor or make_executor(cfg, self.cache, self.device)
            sources = prepare_seed(self.jobs, self._ray_executor)  # sources first (ray: tasks first)
            for label, data in sources.items():
                images[(seed, label)] = data.images
            for model in cfg.models:
                for setting in cfg.settings:
                    cell, cell_rows = self.evaluate(seed, model, setting, sources)
                    cells.append(cell)
                    rows.extend(cell_rows)
        result = StudyResult(self.run_dir, cfg, rows, cells, images, self.cache.hits, self.cache.misses,
                             warnings=self.warnings)
        if report:
            from overconf.report import write_report

            write_report(result)
            if cfg.analysis:  # the study's analysis: section (overconf.runner.run_analysis), on the cached models
                run_analyses(StudyRun(cfg, self.cache, self.device, self.run_dir, tuple(self.attacks), self.dataset))
        return result

    def build_jobs(self, seed: int) -> SeedJobs:
        """The seed's splits, context and jobs (an audit overrides it: fixed splits, the user's model)."""
        return SeedJobs.build(self.cfg, self.dataset, seed, self.cache, self.device, self.attacks, self.run_dir)

    def seed_context(self, seed: int, splits: Splits) -> SeedContext:
        return seed_context(self.cfg, self.dataset, splits, seed, self.cache, self.device, self.run_dir)

    def seed_jobs(self, seed: int) -> SeedJobs:
        """The seed's jobs on the current splits (``self.jobs`` during a run)."""
        if self.jobs is not None and self.jobs.context is self.context and self.jobs.context.seed == seed:
            return self.jobs
        ctx = self.context
        if ctx is None or ctx.seed != seed or ctx.splits is not self.splits or ctx.dataset is not self.dataset:
            ctx = self.seed_context(seed, self.splits)
        return SeedJobs(self.cfg, ctx, tuple(self.attacks))

    def warn_chance_level(self, cell: Cell, rows: list[dict]) -> None:
        """Warn (log and summary) when a target or shadow model's test accuracy is within
        CHANCE_MARGIN of 1/K: it learned nothing, and its attack rates mean nothing."""
        k = self.dataset.num_classes
        for r in rows:
            if r["source"] == "test" and r["metric"] in ("accuracy", "shadow_accuracy") \
                    and r["value"] <= 1 / k + CHANCE_MARGIN:
                role = "shadow" if r["metric"].startswith("shadow") else "target"
                msg = (f"{role} model {cell.model} / {cell.setting} / seed {cell.seed} is at chance level: "
                       f"test accuracy {r['value']:.3f} vs 1/{k} = {1 / k:.3f}; check the recipe (epochs, lr, "
                       f"optimizer): its attack rates are not meaningful")
                log.warning(msg)
                self.warnings.append(msg)

    # ------------------------------------------------------------------ data
    def build_sources(self, seed: int) -> dict[str, SourceData]:
        return self.seed_jobs(seed).build_sources()  # overconf.runner.seed_jobs.SeedJobs.build_sources

    def job(self, seed: int, role: str, model: ModelSpec, setting: Setting) -> ClassifierJob:
        return self.seed_jobs(seed).job(role, model, setting)  # overconf.runner.seed_jobs.SeedJobs.job

    # ------------------------------------------------------------------ one grid cell
    def evaluate(self, seed: int, model: ModelSpec, setting: Setting,
                 sources: dict[str, SourceData]) -> tuple[Cell, list[dict]]:
        cfg, ds = self.cfg, self.dataset
        jobs = self.seed_jobs(seed)
        shadow_setting = jobs.shadow_setting(setting)
        role_setting = {"target": setting, "shadow": shadow_setting}
        trained = {role: load_or_train(jobs.job(role, model, role_setting[role]), self.cache, self.device,
                                       progress=cfg.progress) for role in ("target", "shadow")}

        def outputs(role: str, x: torch.Tensor, y: torch.Tensor) -> Outputs:
            t = trained[role]
            return cached_outputs(self.cache, t.key, t.model, x, y, self.device)

        def split_outputs(role: str, split: str) -> Outputs:
            images, labels = self.splits.images(ds, split)
            return outputs(role, ds.normalize(images), labels)

        out = {role: {"train": split_outputs(role, f"{role}_train"),
                      "test": split_outputs(role, f"{role}_test"),
                      "calibration": split_outputs(role, "calibration")} for role in trained}
        src_out = {label: outputs("target", d.x, d.y) for label, d in sources.items()}

        cal_t = jobs.calibration(setting.calibration, trained["target"], out["target"], "target")
        cal_s = jobs.calibration(shadow_setting.shadow_calibration or shadow_setting.calibration,
                                 trained["shadow"], out["shadow"], "shadow")
        # the release-time defense after the calibration (overconf.defenses.release); unaware: not the shadow's
        cal_t, cal_s = (defend(cal, s.defense, out[r]["train"], out[r]["calibration"], derive_seed(seed, "defense", r))
                        for cal, s, r in ((cal_t, setting, "target"), (cal_s, shadow_setting, "shadow")))

        n_eval, n_fit = cfg.data.eval_size, cfg.data.fit_size
        parts = {  # (role, part) -> (outputs, model inputs, pool, pool indices)
            ("target", "members"): self._part(out["target"]["train"], "target_train", n_eval),
            ("shadow", "members"): self._part(out["shadow"]["train"], "shadow_train", n_fit),
            ("shadow", "nonmembers"): self._part(out["shadow"]["test"], "shadow_test", n_fit),
        }
        for label, d in sources.items():
            parts[("target", f"source:{label}")] = (src_out[label], d.x, d.pool, d.pool_index)
        signals = {k: self.signals(k, v, trained[k[0]], cal_t if k[0] == "target" else cal_s,
                                   attacker_job=trained["shadow"].job, attacker_defense=shadow_setting.defense)
                   for k, v in parts.items()}
        members = signals[("target", "members")]
        src_signals = {label: signals[("target", f"source:{label}")] for label in sources}
        cell = Cell(seed, model.label, setting.name, members, src_signals,
                    member_index={label: self.matched_members(seed, label, len(members), len(s))
                                  for label, s in src_signals.items()},
                    calibration={"target": cal_t.describe(), "shadow": cal_s.describe()},
                    target=trained["target"], target_calibration=cal_t)

        rows = model_rows(cell, out, cal_t, cal_s, cfg.metrics.ece_bins)
        self.warn_chance_level(cell, rows)
        rows += [row(cell, NO_ATTACK, label, k, v) for label, d in sources.items() for k, v in d.info.items()]
        for attack in self.attacks:
            rows += attack_rows(cell, attack, signals[("shadow", "members")], signals[("shadow", "nonmembers")],
                                cfg.metrics)
        info = defense_info(cal_t, cal_s) | training_defense_info(trained["target"], trained["shadow"], setting,
                                                                   shadow_setting)
        if needs_groupnorm_baseline(trained["target"].job):  # DP's accuracy cost against the same GroupNorm model
            images, labels = self.splits.images(ds, "target_test")
            base = load_or_train(groupnorm_job(trained["target"].job), self.cache, self.device, progress=cfg.progress)
            x = ds.normalize(images)
            info |= groupnorm_rows(cached_outputs(self.cache, base.key, base.model, x, labels, self.device).logits,
                                   out["target"]["test"].logits, labels)
        rows += [row(cell, NO_ATTACK, "defense", k, v) for k, v in info.items()]
        rows += self.hook_rows(cell)
        if cfg.metrics.blind_baseline:  # what distribution difference alone buys (overconf.runner.blind_baseline)
            rows += [row(cell, *r) for r in blind_rows(jobs, cell, sources, trained["shadow"],
                                                       parts[("target", "members")][1], cfg.metrics)]
        columns = setting_columns(cfg, cell.model, cell.setting)  # self-describing rows (overconf.config.row_columns)
        return cell, [r | columns for r in rows]

    def hook_rows(self, cell: Cell) -> list[dict]:
        """After a cell is evaluated: the registered post-cell hooks (overconf.signals.cell_hooks; the GAN
        streaming FPR and latent search, ``gan.stream`` / ``gan.search``, off by default)."""
        view = CellContext(cell.seed, cell.model, cell.setting, cell.target, cell.target_calibration,
                           dict(cell.fitted), tuple(self.attacks), cell.extensions)
        return [row(cell, *r) for r in run_cell_hooks(self.context, view)]

    @staticmethod
    def matched_members(seed: int, source: str, n_members: int, n_source: int) -> torch.Tensor:
        """Indices of the members a source is compared with: all of them, or a seeded subset of the
        source's size, so that every evaluation has equal-size member and non-member sets."""
        if n_source >= n_members:
            return torch.arange(n_members)
        perm = torch.randperm(n_members, generator=generator(seed, "matched_members", source))
        return perm[:n_source].sort().values

    shadow_setting = staticmethod(SeedJobs.shadow_setting)

    def _part(self, outs: Outputs, split: str, n: int):
        images, _ = self.splits.images(self.dataset, split)
        idx = getattr(self.splits, split)[:n]
        return outs.subset(slice(0, n)), self.dataset.normalize(images[:n]), self.splits.pool(split), idx

    def signals(self, key: tuple[str, str], part, trained: TrainedClassifier, cal: Calibration,
                attacker_job: ClassifierJob | None = None, attacker_defense: Component | None = None) -> Signals:
        """The queried model's signals; reference models follow ``attacker_job``'s (the shadow's) recipe."""
        outs, x, pool, pool_index = part
        extra = {}
        for req in sorted({as_request(r) for a in self.attacks for r in a.requires}, key=lambda r: r.key):
            ctx = SignalContext(trained.model, trained.key, x, outs.labels, key[0], key[1], self.device,
                                self.cache, self.context, pool_index, pool, trained.job, attacker_job, attacker_defense,
                                cal.log_probs)
            value = cached_signal(req, ctx)
            # the model's outputs on other inputs (augmented queries, a population sample) are
            # released like its own: through the setting's calibration
            extra[req.key] = cal.log_probs(value) if isinstance(value, Outputs) else value
        return Signals(cal.log_probs(outs), outs.labels, extra)

def run_study(cfg: StudyConfig, run_dir: str | Path | None = None, *, report: bool = True,
              overwrite: bool = False) -> StudyResult:
    return Study(cfg, run_dir, overwrite=overwrite).run(report=report)
