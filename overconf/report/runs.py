"""A finished run folder read back: config.yaml (as a typed StudyConfig, through overconf.config,
the one parser), results.json and per_sample.pt (RunData), and what each of its settings is
(SettingInfo, from the typed settings)."""
from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import StudyConfig, parse_config
from overconf.core.errors import ConfigError, DataError, IncompleteRunError, OverconfError
from overconf.core.yamlio import load_yaml

log = logging.getLogger("overconf")


@dataclass
class RunData:
    run_dir: Path
    config: StudyConfig
    """the run's config.yaml, parsed and validated by overconf.config (the one parser)"""
    rows: list[dict]
    per_sample: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def dataset(self) -> str:
        """The run's data.dataset."""
        return self.config.data.dataset


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
    """config.yaml (as a typed StudyConfig) + results.json + per_sample.pt of a finished
    ``overconf run``; a missing or
    damaged file is an error naming it, an unfinished run is refused (``require_complete``)."""
    run_dir = Path(run_dir)
    if require_complete:
        check_complete(run_dir)
    if (run_dir / "audit.yaml").is_file():  # its config.yaml names the user's model and data, not registered ones
        raise OverconfError(f"'{run_dir}' is an audit (overconf audit); compare reads study runs only: read the "
                            f"audit's summary.md and results.csv")
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
        config = parse_config(config)
    except ConfigError as e:
        raise _damaged(run_dir, "config.yaml", f"not a valid study config: {e}") from None
    try:
        rows = json.loads((run_dir / "results.json").read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise _damaged(run_dir, "results.json", f"not valid JSON: {e}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in ROW_KEYS) for r in rows):
        raise _damaged(run_dir, "results.json", f"not a list of rows with keys {', '.join(ROW_KEYS)}")
    if not rows:  # a finished run writes at least its models' accuracy rows
        raise _damaged(run_dir, "results.json", "it holds no rows")
    per_sample = read_per_sample(run_dir)
    return RunData(run_dir, config, rows, per_sample)


def read_per_sample(run_dir: Path) -> dict:
    """``run_dir/per_sample.pt`` (:func:`overconf.report.per_sample.load_per_sample`); a file that is
    not plain data, or not of its structure, is one error naming it ("damaged"), never run."""
    from .per_sample import load_per_sample

    try:
        return load_per_sample(run_dir / "per_sample.pt")
    except pickle.UnpicklingError:  # names a class or function: refused by the weights-only unpickler
        raise _damaged(run_dir, "per_sample.pt", "it holds more than plain tensors, numbers and strings, so it "
                                                 "was not loaded: not written by overconf, or forged") from None
    except Exception as e:  # RuntimeError, EOFError (truncated), ValueError (another structure)
        why = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise _damaged(run_dir, "per_sample.pt", f"{type(e).__name__}: {why}" if why else type(e).__name__) from None


@dataclass
class SettingInfo:
    """What a setting does, from the run's typed config (:func:`setting_infos`)."""

    name: str
    recipe: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    attacker: str = "same"
    sweep: str | None = None
    sweep_value: Any = None
    defense: dict[str, Any] = field(default_factory=lambda: {"name": "none"})

    @property
    def kind(self) -> str:
        """baseline | label_smoothing | weight_decay | dropout | temperature | llla |
        attacker_uncalibrated | defense | other (a 'pure' setting changes one thing only)."""
        cal = self.calibration.get("name", "none")
        if self.defense.get("name", "none") != "none":
            return "defense" if not self.recipe and cal == "none" and self.attacker in ("same", "aware") else "other"
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
        d = self.defense
        if d.get("name", "none") != "none":
            parts.append("defense " + d["name"] + "(" + ", ".join(f"{k}={v}" for k, v in d.items() if k != "name") + ")")
        if self.attacker != "same":
            parts.append(f"attacker {self.attacker}")
        return "; ".join(parts) or "no change"


def setting_infos(config: StudyConfig) -> dict[str, SettingInfo]:
    """Setting name -> what it changes, from the typed :class:`~overconf.config.Setting` objects."""
    return {s.name: SettingInfo(s.name, dict(s.recipe), {"name": s.calibration.name, **s.calibration.params},
                                s.attacker, s.sweep, s.sweep_value, {"name": s.defense.name, **s.defense.params})
            for s in config.settings}
