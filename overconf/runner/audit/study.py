"""Run an audit: the study machinery (overconf.runner.study) on the user's model and data.

:class:`AuditStudy` is a :class:`~overconf.runner.study.Study` of one seed, one model and one setting
on the audit's dataset (overconf.data.audit_data: fixed splits, the user's normalisation). Its jobs
(:class:`AuditJobs`) build every model with the user's factory: the target's job is the user's
trained model (its state dict is stored under the job's key before the run, so the study loads it
and never trains it; the key holds the weights' digest), the shadow's and the reference models'
(through the shadow's job, overconf.reference.manager) are trained with the user's recipe or
training function, cached by content, batched where possible, on Ray when configured. Sources,
attacks, metrics, rows, summary, figures and TensorBoard are the study's; the audit adds the
mimicry check (overconf.runner.audit.mimicry) to the rows, the log and the summary's warnings, and
writes ``audit.yaml`` (the audit config, with absolute paths) next to the study's config.yaml.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from overconf.config import ModelSpec, Setting
from overconf.config.row_columns import setting_columns
from overconf.core.cache import atomic_write_text
from overconf.core.device import precision
from overconf.runner.audit.mimicry import mimicry
from overconf.runner.audit.setup import AuditPlan
from overconf.runner.cells import Cell, StudyResult
from overconf.runner.seed_jobs import SeedJobs, seed_context
from overconf.runner.study import Study
from overconf.training.factory import ModelFactory
from overconf.training.jobs import ClassifierJob

log = logging.getLogger("overconf")

NOT_TRAINED = ("train_seconds", "train_cpu_seconds")
"""the target's training-time rows: the audit did not train it"""


@dataclass(frozen=True)
class AuditJobs(SeedJobs):
    """The seed's jobs of an audit: the user's factory builds every model; the target's job is the
    user's trained model (``target``: the factory with the weights' digest)."""

    factory: ModelFactory | None = None
    target: ModelFactory | None = None

    def job(self, role: str, model: ModelSpec, setting: Setting) -> ClassifierJob:
        job = super().job(role, model, setting)
        return dataclasses.replace(job, factory=self.target if role == "target" else self.factory)


class AuditStudy(Study):
    """``AuditStudy(plan).run()``: the audit's run folder, rows, summary, figures and TensorBoard."""

    def __init__(self, plan: AuditPlan, run_dir: str | Path | None = None, *, overwrite: bool = False):
        super().__init__(plan.study, run_dir, overwrite=overwrite)
        self.plan = plan
        self.dataset = plan.dataset

    def build_jobs(self, seed: int) -> SeedJobs:
        ctx = seed_context(self.cfg, self.dataset, self.dataset.splits, seed, self.cache, self.device, self.run_dir)
        ctx = dataclasses.replace(ctx, models=())  # the model is the user's: no registered architecture to check
        return AuditJobs(self.cfg, ctx, tuple(self.attacks), self.plan.factory, self.plan.target)

    def _run(self, report: bool) -> StudyResult:
        self.store_target()
        plan = self.plan
        raw = plan.cfg.to_dict()
        raw["model"].update(factory=plan.factory.name, train=plan.factory.fit_name)  # also when given as objects
        atomic_write_text(self.run_dir / "audit.yaml",
                          f"# the audit of this run; relative paths and module names resolve against {plan.base_dir}\n"
                          f"# (parts given as Python objects to overconf.audit are null here)\n"
                          + yaml.safe_dump(raw, sort_keys=False))
        return super()._run(report)

    def store_target(self) -> None:
        """The user's trained target, stored under its job's key (with the device's precision, as
        ``load_or_train`` keys it), unless already there."""
        jobs = self.build_jobs(self.cfg.seeds[0])
        job = jobs.job("target", self.cfg.models[0], self.cfg.settings[0])
        key = dataclasses.replace(job, precision=precision(self.device)).key
        if self.cache.load("models", key) is None:
            self.cache.save("models", key, {"state_dict": self.plan.target_state, "history": [], "arch": job.arch,
                                            "params": {}, "recipe": dataclasses.asdict(job.recipe), "seed": job.seed,
                                            "audited": True})

    def evaluate(self, seed, model, setting, sources) -> tuple[Cell, list[dict]]:
        cell, rows = super().evaluate(seed, model, setting, sources)
        rows = [r for r in rows if not (r["attack"] == "-" and r["metric"] in NOT_TRAINED)]
        extra, warnings = mimicry(self.seed_jobs(seed), model, setting, cell.target, self.plan.cfg.mimicry)
        for w in warnings:
            log.warning(w)
            self.warnings.append(w)
        columns = setting_columns(self.cfg, cell.model, cell.setting)
        return cell, rows + [{"model": cell.model, "seed": seed, "setting": cell.setting, "attack": a, "source": s,
                              "metric": m, "value": float(v)} | columns for a, s, m, v in extra]


def run_audit(plan: AuditPlan, run_dir: str | Path | None = None, *, report: bool = True,
              overwrite: bool = False) -> StudyResult:
    """Run the prepared audit (overconf.runner.audit.setup.prepare_audit) and write its run folder."""
    return AuditStudy(plan, run_dir, overwrite=overwrite).run(report=report)
