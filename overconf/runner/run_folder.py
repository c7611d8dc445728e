"""Run folders: a new folder is created exclusively (a default ``<name>-<stamp>`` that is taken gets a
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
from pathlib import Path
from typing import Any

from overconf.core.cache import atomic_write_text, storage_error
from overconf.config import StudyConfig
from overconf.core.errors import RunFolderError, StorageError

log = logging.getLogger("overconf")


STATUS = "status.json"
"""{"status": running | complete | failed | interrupted, "started", "finished", "error"}; 'complete'
is written atomically after every other artefact"""
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
