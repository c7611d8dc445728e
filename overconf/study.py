"""Run a study: config -> splits and sources -> trained target/shadow models (cached) -> outputs
per (model, source) (cached) -> calibration -> attacks fitted on the shadow and applied to the
target -> tidy result rows and per-sample scores -> report.

The grid is seeds x models x settings. Every setting trains (or loads) its own target and
shadow with the setting's recipe; post-hoc calibrations are fitted per model on the held-out
calibration split. Attacks are fitted on the shadow model's members vs non-members only.

Run folders: a new folder is created exclusively (a default ``<name>-<stamp>`` that is taken gets a
``-2``, ``-3``... suffix), a folder that holds a run is refused unless ``overwrite`` (which clears
it first), and ``status.json`` records ``running`` -> ``complete`` (written last, atomically) or
``failed`` / ``interrupted`` with the error; ``overconf compare`` reads only complete runs.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .attacks import ATTACKS, Attack, Fitted, Signals
from .cache import Cache, atomic_write_text, check_writable, storage_error
from .calibrations import CALIBRATIONS, Calibration, CalibrationContext
from .config import Component, ModelSpec, Setting, StudyConfig, source_label
from .data import SOURCES, SourceContext, SourceData, Splits, load_dataset, make_splits
from .data.sources import image_digests, without_members
from .device import resolve_device
from .errors import ConfigError, RunFolderError, StorageError
from .metrics import (accuracy, expected_calibration_error, membership_metrics, mmps,
                      overconfidence_error)
from .outputs import Outputs, cached_outputs
from .seeding import derive_seed, generator
from .signals import SIGNALS, SignalContext, as_request, cached_signal
from .training.jobs import ClassifierJob, TrainedClassifier, load_or_train

log = logging.getLogger("overconf")

NO_ATTACK = "-"


@dataclass
class Cell:
    """The evaluated signals of one (seed, model, setting): what attacks and figures read."""

    seed: int
    model: str
    setting: str
    members: Signals
    sources: dict[str, Signals]
    scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    """attack -> {'members' | source: per-sample scores}"""
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    """fitted calibration parameters per role"""
    member_index: dict[str, torch.Tensor] = field(default_factory=dict)
    """source -> the members it is evaluated against (all members, or a seeded subset of the
    source's size when the source has fewer samples: member and non-member sets are equal-size)"""
    fitted: dict[str, Fitted] = field(default_factory=dict, repr=False)
    """attack label -> the attack fitted on the shadow (for streaming / search extensions)"""
    target: TrainedClassifier | None = field(default=None, repr=False)
    target_calibration: Calibration | None = field(default=None, repr=False)
    extensions: dict[str, Any] = field(default_factory=dict, repr=False)
    """results of post-evaluation hooks for the report (GAN 'stream' curve, latent 'search')"""


@dataclass
class StudyResult:
    run_dir: Path
    config: StudyConfig
    rows: list[dict[str, Any]]
    cells: list[Cell]
    images: dict[tuple[int, str], torch.Tensor]
    """(seed, source) -> uint8 images, for figures of confident false positives"""
    cache_hits: int = 0
    cache_misses: int = 0
    warnings: list[str] = field(default_factory=list)
    """problems the summary and the log point out (a model at chance level)"""


STATUS = "status.json"
"""{"status": running | complete | failed | interrupted, "started", "finished", "error"}; 'complete'
is written atomically after every other artefact"""
CHANCE_MARGIN = 0.05
"""a model whose test accuracy is at most 1/K + CHANCE_MARGIN is reported as at chance level"""
OUTPUT_FIX = "choose another with --set output_dir=DIR or --out DIR"


def default_run_dir(cfg: StudyConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cfg.output_dir) / f"{cfg.name}-{stamp}"


def write_status(run_dir: Path, status: str, **info: Any) -> None:
    """Record the run's state in ``run_dir/status.json`` (atomically)."""
    info = {"status": status, **info}
    atomic_write_text(run_dir / STATUS, json.dumps(info, indent=1) + "\n")


def _claim(run_dir: Path) -> bool:
    """Create ``run_dir/status.json`` exclusively (O_EXCL): True if this process owns the folder."""
    try:
        fd = os.open(run_dir / STATUS, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _status_of(run_dir: Path) -> str | None:
    """The status recorded in ``run_dir/status.json`` (None if absent or unreadable)."""
    try:
        return json.loads((run_dir / STATUS).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _ended_without_results(run_dir: Path) -> bool:
    """True for a folder whose status.json says the run failed or was interrupted."""
    return _status_of(run_dir) in ("failed", "interrupted")


def create_run_dir(cfg: StudyConfig, run_dir: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Create and claim the run folder; never write into another run's folder.

    Without ``run_dir``: ``<output_dir>/<name>-<stamp>``, or with a suffix ``-2``, ``-3``... when
    that is taken (two runs started in the same second). With ``run_dir``: a new or empty folder
    is used; one that holds a run is refused unless ``overwrite``, which clears it first (only a
    folder that looks like a run: status.json, config.yaml or results.csv). A failed or
    interrupted run's folder is cleared and reused ("re-run to resume" needs no --overwrite)."""
    out = Path(cfg.output_dir)
    if run_dir is None and out.exists() and not out.is_dir():
        raise StorageError(f"the output folder '{out}' is a file, not a folder; move the file away or {OUTPUT_FIX}")
    try:
        if run_dir is None:
            base = default_run_dir(cfg)
            base.parent.mkdir(parents=True, exist_ok=True)
            for i in range(1, 10_000):
                path = base if i == 1 else base.with_name(f"{base.name}-{i}")
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                if _claim(path):
                    return path
            raise RunFolderError(f"no free run folder next to '{base}'; use --out DIR")
        path = Path(run_dir)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"run folder '{path}' is a file; pass another --out")
        if path.is_dir() and any(path.iterdir()):
            looks_like_run = any((path / n).exists() for n in (STATUS, "config.yaml", "results.csv"))
            if _ended_without_results(path):  # a failed or interrupted run: re-running it replaces it
                log.info("replacing the unfinished run in %s", path)
                overwrite = True
            if not overwrite:
                what = "a run" if looks_like_run else "other files"
                if _status_of(path) == "running":
                    what = "a run that is still running or was killed"
                raise RunFolderError(f"run folder '{path}' already holds {what}; pass another --out, or "
                                     f"--overwrite to delete it and run again")
            if not looks_like_run:
                raise RunFolderError(f"'{path}' is not an overconf run folder (no {STATUS}, config.yaml or "
                                     f"results.csv); --overwrite clears only run folders: pass another --out")
            log.info("--overwrite: clearing %s", path)
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        if not _claim(path):
            raise RunFolderError(f"run folder '{path}' was just taken by another run; pass another --out")
        return path
    except OSError as e:
        if isinstance(e, RunFolderError):
            raise
        raise storage_error(e, getattr(e, "filename", None) or cfg.output_dir, "output folder", OUTPUT_FIX) from e


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
        return result

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
            attack.check(self)
        for name in sorted({as_request(r).name for a in self.attacks for r in a.requires}):
            check = getattr(SIGNALS[name], "check", None)
            if check is not None:
                check(self)

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
                                config=self.cfg, log_dir=self.gan_log_dir)
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
        return ClassifierJob(model.arch, self.cfg.recipe_for(model, setting), derive_seed(seed, role),
                             images, labels, self.dataset.mean, self.dataset.std, self.dataset.num_classes,
                             params=model.params, name=f"{role} {model.label} {setting.name} s{seed}")

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

        rows = self.model_rows(cell, trained, out, cal_t, cal_s)
        self.warn_chance_level(cell, rows)
        rows += [self._row(cell, NO_ATTACK, label, k, v) for label, d in sources.items() for k, v in d.info.items()]
        for attack in self.attacks:
            rows += self.attack_rows(cell, attack, signals[("shadow", "members")],
                                     signals[("shadow", "nonmembers")])
        rows += self.gan_hook_rows(cell)
        return cell, rows

    def gan_hook_rows(self, cell: Cell) -> list[dict]:
        """After a cell is evaluated: streaming FPR over fresh GAN fakes and the latent search
        against its target and fitted attacks (``gan.stream``, ``gan.search``; off by default)."""
        from .gan.hooks import gan_hook_rows

        return [self._row(cell, *r) for r in gan_hook_rows(self, cell)]

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
        """What the attacker's shadow gets: the setting itself, or with ``attacker: uncalibrated``
        the study recipe without overrides and no calibration (the attacker ignores the defense)."""
        return setting if setting.attacker == "same" else Setting(setting.name)

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
                                self.cache, self, pool_index, pool, trained.job, attacker_job)
            value = cached_signal(req, ctx)
            # the model's outputs on other inputs (augmented queries, a population sample) are
            # released like its own: through the setting's calibration
            extra[req.key] = cal.log_probs(value) if isinstance(value, Outputs) else value
        return Signals(cal.log_probs(outs), outs.labels, extra)

    # ------------------------------------------------------------------ rows
    def _row(self, cell: Cell, attack: str, source: str, metric: str, value: Any) -> dict:
        return {"model": cell.model, "seed": cell.seed, "setting": cell.setting, "attack": attack,
                "source": source, "metric": metric, "value": float(value)}

    def model_rows(self, cell: Cell, trained, out, cal_t: Calibration, cal_s: Calibration) -> list[dict]:
        bins = self.cfg.metrics.ece_bins
        rows = []
        for role, cal, prefix in (("target", cal_t, ""), ("shadow", cal_s, "shadow_")):
            for split in ("train", "test"):
                o = out[role][split]
                p = cal.log_probs(o).exp()
                rows.append(self._row(cell, NO_ATTACK, split, f"{prefix}accuracy", accuracy(p, o.labels)))
                if split == "test":
                    rows.append(self._row(cell, NO_ATTACK, split, f"{prefix}ece",
                                          expected_calibration_error(p, o.labels, bins)))
                    rows.append(self._row(cell, NO_ATTACK, split, f"{prefix}overconfidence_error",
                                          overconfidence_error(p, o.labels, bins)))
        rows.append(self._row(cell, NO_ATTACK, "members", "mean_max_score", cell.members.max_score.mean()))
        for label, s in cell.sources.items():
            rows.append(self._row(cell, NO_ATTACK, label, "mean_max_score", s.max_score.mean()))
        for role, params in cell.calibration.items():
            for k, v in params.items():
                if isinstance(v, (int, float)):
                    rows.append(self._row(cell, NO_ATTACK, role, f"calibration_{k}", v))
        return rows

    def attack_rows(self, cell: Cell, attack: Attack, shadow_in: Signals, shadow_out: Signals) -> list[dict]:
        m = self.cfg.metrics
        g = generator(cell.seed, "attack", attack.label, cell.model, cell.setting)
        fitted = attack.fit(shadow_in, shadow_out, generator=g)
        cell.fitted[attack.label] = fitted
        cell.thresholds[attack.label] = fitted.threshold
        s_in = fitted.score(cell.members)
        cell.scores[attack.label] = {"members": s_in}
        rows = [self._row(cell, attack.label, "shadow", k, v) for k, v in fitted.info.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for label, sig in cell.sources.items():
            s_out = fitted.score(sig)
            cell.scores[attack.label][label] = s_out
            idx = cell.member_index[label]
            metrics = membership_metrics(s_in[idx], s_out, fitted.threshold, fpr_targets=m.fpr_targets,
                                         priors=m.priors, n_boot=m.bootstrap, confidence=m.confidence,
                                         generator=generator(cell.seed, "bootstrap", attack.label, label))
            metrics |= mmps(cell.members.max_score[idx], sig.max_score, s_in[idx] >= fitted.threshold,
                            s_out >= fitted.threshold)
            rows += [self._row(cell, attack.label, label, k, v) for k, v in metrics.items()]
        return rows


def run_study(cfg: StudyConfig, run_dir: str | Path | None = None, *, report: bool = True,
              overwrite: bool = False) -> StudyResult:
    return Study(cfg, run_dir, overwrite=overwrite).run(report=report)
