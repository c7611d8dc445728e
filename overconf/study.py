"""Run a study: config -> splits and sources -> trained target/shadow models (cached) -> outputs
per (model, source) (cached) -> calibration -> attacks fitted on the shadow and applied to the
target -> tidy result rows and per-sample scores -> report.

The grid is seeds x models x settings. Every setting trains (or loads) its own target and
shadow with the setting's recipe; post-hoc calibrations are fitted per model on the held-out
calibration split. Attacks are fitted on the shadow model's members vs non-members only.

Run folders and status.json: overconf.run_folder; cells, the result and its rows: overconf.cells.
Components receive a frozen per-seed :class:`~overconf.contexts.SeedContext`, never the Study.
"""
from __future__ import annotations

import datetime
import functools
import json
import logging
import os
from pathlib import Path

import torch
import yaml

from . import catalog as _catalog  # noqa: F401  (registers every built-in member and hook)
from .attacks import ATTACKS, Attack, Signals
from .cache import Cache, atomic_write_text, check_writable
from .calibrations import CALIBRATIONS, Calibration, CalibrationContext
from .config import Component, ModelSpec, Setting, StudyConfig, source_label
from .contexts import SeedContext
from .data import SOURCES, SourceContext, SourceData, Splits, load_dataset, make_splits
from .data.sources import image_digests, without_members
from .defenses.release import defend, defense_info
from .defenses.training import training_defense_info, with_training_defense
from .device import resolve_device
from .cells import NO_ATTACK, Cell, StudyResult, attack_rows, model_rows, row
from .errors import ConfigError
from .gan.generators import seed_generator
from .hooks import CellContext, run_cell_hooks
from .outputs import Outputs, cached_outputs
from .run_analysis import run_analyses
from .run_folder import OUTPUT_FIX, STATUS, create_run_dir, default_run_dir, write_status
from .results import setting_columns
from .seeding import derive_seed, generator
from .signals import SIGNALS, SignalContext, as_request, cached_signal
from .training.jobs import ClassifierJob, TrainedClassifier, load_or_train

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

    # ------------------------------------------------------------------ top level
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
            try:
                write_status(self.run_dir, "interrupted" if interrupted else "failed", started=started,
                             finished=datetime.datetime.now().isoformat(timespec="seconds"), error=error)
            except OSError:
                pass
            log.error("run %s %s (%s); marked in %s; models already trained stay cached", self.run_dir,
                      "interrupted" if interrupted else "failed", type(e).__name__, self.run_dir / STATUS)
            raise
        write_status(self.run_dir, "complete", started=started,
                     finished=datetime.datetime.now().isoformat(timespec="seconds"), warnings=self.warnings)
        return result

    def _run(self, report: bool) -> StudyResult:
        cfg = self.cfg
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        self.dataset = load_dataset(cfg.data.dataset, cfg.data.root, cfg.data.download)
        rows: list[dict] = []
        cells: list[Cell] = []
        images: dict = {}
        for seed in cfg.seeds:
            self.seed = seed
            self.splits = make_splits(self.dataset, cfg.data.splits, seed)
            self.context = self.seed_context(seed, self.splits)
            self._check_sizes()
            self._check_signals()
            sources = self.build_sources(seed)  # before any training: bad sources fail early
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
            from .report import write_report

            write_report(result)
            if cfg.analysis:  # the study's analysis: section (overconf.run_analysis), on the cached models
                run_analyses(self)
        return result

    def seed_context(self, seed: int, splits: Splits) -> SeedContext:
        cfg = self.cfg
        return SeedContext(seed, self.dataset, splits, self.cache, self.device, cfg.data, cfg.reference, cfg.gan,
                           cfg.metrics, tuple(cfg.models), cfg.progress, self.gan_log_dir)

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

    def _check_sizes(self) -> None:
        d, s = self.cfg.data, self.cfg.data.splits
        for what, size, limit in (("data.eval_size", d.eval_size, ("data.splits.target_train", s.target_train)),
                                  ("data.fit_size", d.fit_size, ("data.splits.shadow_train", s.shadow_train)),
                                  ("data.fit_size", d.fit_size, ("data.splits.shadow_test", s.shadow_test))):
            if size > limit[1]:
                raise ConfigError(f"{what} = {size} exceeds {limit[0]} = {limit[1]}; lower {what} "
                                  f"or raise {limit[0]}")

    def _check_signals(self) -> None:
        """Attacks and signal producers validate the study (sizes, architectures) before any training."""
        for attack in self.attacks:
            attack.check(self.context)
        for name in sorted({as_request(r).name for a in self.attacks for r in a.requires}):
            check = getattr(SIGNALS[name], "check", None)
            if check is not None:
                check(self.context)

    # ------------------------------------------------------------------ data
    def build_sources(self, seed: int) -> dict[str, SourceData]:
        """Every source, checked for content overlap with the target's members (``data.overlap``)."""
        out = {}
        members = set(image_digests(self.splits.images(self.dataset, "target_train")[0]))
        for comp in self.cfg.sources:
            label = source_label(comp)
            params = {k: v for k, v in comp.params.items() if k != "label"}
            ctx = SourceContext(self.dataset, self.splits, self.cfg.data.eval_size,
                                generator(seed, "source", label), seed, self.cfg.data.root,
                                self.cfg.data.download, self.device, self.cache, self.cfg.progress,
                                gan=self.cfg.gan, generator_for=functools.partial(seed_generator, self.context))
            data = without_members(label, SOURCES[comp.name](ctx, **params), members, self.cfg.data.overlap)
            if len(data) == 0:
                raise ConfigError(f"source '{label}' produced no samples")
            out[label] = data
            log.info("source %-14s %5d samples", label, len(data))
        return out

    @property
    def gan_log_dir(self) -> Path | None:
        """Where generators log their training (TensorBoard), if the report has TensorBoard logs."""
        return self.run_dir / "tensorboard" if self.cfg.report.tensorboard else None

    def job(self, seed: int, role: str, model: ModelSpec, setting: Setting) -> ClassifierJob:
        images, labels = self.splits.images(self.dataset, f"{role}_train")
        job = ClassifierJob(model.arch, self.cfg.recipe_for(model, setting), derive_seed(seed, role),
                            images, labels, self.dataset.mean, self.dataset.std, self.dataset.num_classes,
                            params=model.params, name=f"{role} {model.label} {setting.name} s{seed}")
        return with_training_defense(job, setting.defense, self.splits.images(self.dataset, "calibration"))

    # ------------------------------------------------------------------ one grid cell
    def evaluate(self, seed: int, model: ModelSpec, setting: Setting,
                 sources: dict[str, SourceData]) -> tuple[Cell, list[dict]]:
        cfg, ds = self.cfg, self.dataset
        shadow_setting = self.shadow_setting(setting)
        role_setting = {"target": setting, "shadow": shadow_setting}
        trained = {role: load_or_train(self.job(seed, role, model, role_setting[role]), self.cache, self.device,
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

        cal_t = self.calibration(setting.calibration, trained["target"], out["target"], seed, "target")
        cal_s = self.calibration(shadow_setting.shadow_calibration or shadow_setting.calibration,
                                 trained["shadow"], out["shadow"], seed, "shadow")
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
                                   attacker_job=trained["shadow"].job)
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
        rows += [row(cell, NO_ATTACK, "defense", k, v) for k, v in info.items()]
        rows += self.hook_rows(cell)
        columns = setting_columns(cfg, cell.model, cell.setting)  # self-describing rows (overconf.results)
        return cell, [r | columns for r in rows]

    def hook_rows(self, cell: Cell) -> list[dict]:
        """After a cell is evaluated: the registered post-cell hooks (overconf.hooks; the GAN
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

    @staticmethod
    def shadow_setting(setting: Setting) -> Setting:
        """What the attacker's shadow gets (:meth:`overconf.config.Setting.for_shadow`)."""
        return setting.for_shadow()

    def _part(self, outs: Outputs, split: str, n: int):
        images, _ = self.splits.images(self.dataset, split)
        idx = getattr(self.splits, split)[:n]
        return outs.subset(slice(0, n)), self.dataset.normalize(images[:n]), self.splits.pool(split), idx

    def calibration(self, comp: Component, trained: TrainedClassifier, outs: dict[str, Outputs], seed: int,
                    role: str) -> Calibration:
        head = torch.nn.Linear(trained.model.head.in_features, trained.model.head.out_features).double()
        head.load_state_dict({k: v.detach().cpu().double() for k, v in trained.model.head.state_dict().items()})
        cal = CALIBRATIONS[comp.name](**comp.params)
        extra = {"noise": self.noise_outputs(trained, seed)} if "noise" in cal.requires else {}
        ctx = CalibrationContext(head, outs["train"], outs["calibration"], derive_seed(seed, "calibration", role),
                                 extra)
        return cal.fit(ctx)

    def noise_outputs(self, trained: TrainedClassifier, seed: int) -> Outputs:
        """Outputs on uniform-noise images (as many as the calibration split, at least 100), for a
        calibration's noise-OOD term; drawn from their own seeded stream and cached per model."""
        n = max(100, self.cfg.data.splits.calibration)
        images = torch.randint(0, 256, (n, *self.dataset.shape), generator=generator(seed, "calibration", "noise"),
                               dtype=torch.uint8)
        return cached_outputs(self.cache, trained.key, trained.model, self.dataset.normalize(images),
                              torch.full((n,), -1, dtype=torch.long), self.device)

    def signals(self, key: tuple[str, str], part, trained: TrainedClassifier, cal: Calibration,
                attacker_job: ClassifierJob | None = None) -> Signals:
        """The queried model's signals; reference models follow ``attacker_job``'s (the shadow's) recipe."""
        outs, x, pool, pool_index = part
        extra = {}
        for req in sorted({as_request(r) for a in self.attacks for r in a.requires}, key=lambda r: r.key):
            ctx = SignalContext(trained.model, trained.key, x, outs.labels, key[0], key[1], self.device,
                                self.cache, self.context, pool_index, pool, trained.job, attacker_job)
            value = cached_signal(req, ctx)
            # the model's outputs on other inputs (augmented queries, a population sample) are
            # released like its own: through the setting's calibration
            extra[req.key] = cal.log_probs(value) if isinstance(value, Outputs) else value
        return Signals(cal.log_probs(outs), outs.labels, extra)

def run_study(cfg: StudyConfig, run_dir: str | Path | None = None, *, report: bool = True,
              overwrite: bool = False) -> StudyResult:
    return Study(cfg, run_dir, overwrite=overwrite).run(report=report)
