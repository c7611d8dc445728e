"""Run folders: a new folder is created exclusively (a default ``<name>-<stamp>`` that is taken gets a
``-2``, ``-3``... suffix), a folder that holds a run is refused unless ``overwrite`` (which clears
it first), and ``status.json`` records ``running`` -> ``complete`` (written last, atomically) or
``failed`` / ``interrupted`` with the error; ``overconf compare`` reads only complete runs.
Clearing a run (``--overwrite``, or re-running a failed one) deletes only the files and folders
overconf writes, known by name (:data:`RUN_FILES`, :data:`RUN_FOLDERS`), never the folder itself:
a folder that also holds anything else is refused, naming it.
"""
from __future__ import annotations

import datetime
import errno
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


RUN_FILES = ("status.json", "config.yaml", "results.csv", "results.json", "per_sample.pt", "summary.md",
             "defense_fpr.csv", "comparison.md", "comparison.csv", "factors.csv", "effects.csv", "edges.csv",
             "analysis.json", "nominal_fpr.csv", "report.html", "results.schema.json", "blind_baseline.csv",
             "dp_audit.csv")
"""the files overconf writes at the top of a run folder (study, report, comparison, causal factors)"""
RUN_FOLDERS = ("figures", "tensorboard", "analysis", "comparison")
"""the folders overconf writes in a run folder (figures, TensorBoard runs, analyses, ``overconf compare``)"""


def is_run_entry(name: str) -> bool:
    """True for a name overconf writes in a run folder: :data:`RUN_FILES`, :data:`RUN_FOLDERS`, and
    the temporary files of an interrupted atomic write (``.<file>.*.tmp``) or writability probe."""
    if name in RUN_FILES or name in RUN_FOLDERS:
        return True
    return name.endswith(".tmp") and (name.startswith(".overconf-probe-")
                                      or any(name.startswith(f".{f}.") for f in RUN_FILES))


def clear_run(path: Path) -> None:
    """Delete what overconf wrote in the run folder ``path`` (never the folder, never anything else:
    call :func:`foreign_entries` first). A link is removed, not followed."""
    for entry in sorted(path.iterdir()):
        if is_run_entry(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def foreign_entries(path: Path) -> list[str]:
    """Names in ``path`` that overconf does not write (a user's notes, notebook, own files)."""
    return sorted(e.name for e in path.iterdir() if not is_run_entry(e.name))


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_not_dangling(path: Path, what: str) -> None:
    """A symbolic link whose target does not exist is named as such (not as a full disk)."""
    if path.is_symlink() and not path.exists():
        raise RunFolderError(f"the {what} '{path}' is a symbolic link to '{os.readlink(path)}', which does not "
                             f"exist; create that folder, or {OUTPUT_FIX}")


def name_too_long(e: OSError, cfg: StudyConfig, run_dir) -> RunFolderError:
    """ENAMETOOLONG named as such: which name, how long, and what to shorten."""
    name = max(Path(e.filename or cfg.output_dir).parts, key=lambda p: len(p.encode()))
    fix = ("pass a shorter --out" if run_dir is not None
           else "shorten the study's name (--set name=SHORT) or pass --out DIR")
    return RunFolderError(f"the run folder name '{name[:60]}...' is too long ({len(name.encode())} bytes; a file "
                          f"system allows at most 255 per name); {fix}")


def create_run_dir(cfg: StudyConfig, run_dir: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Create and claim the run folder; never write into another run's folder.

    Without ``run_dir``: ``<output_dir>/<name>-<stamp>``, or with a suffix ``-2``, ``-3``... when
    that is taken (two runs started in the same second). With ``run_dir``: a new or empty folder
    is used; one that holds a run is refused unless ``overwrite``; a failed or interrupted run's
    folder is reused ("re-run to resume" needs no --overwrite). Either way only what overconf
    wrote is deleted (:func:`clear_run`), and a folder holding anything else (notes, a
    notebook, a folder that is no run at all) is refused, naming those files."""
    out = Path(cfg.output_dir)
    if run_dir is None and out.exists() and not out.is_dir():
        raise StorageError(f"the output folder '{out}' is a file, not a folder; move the file away or {OUTPUT_FIX}")
    try:
        if run_dir is None:
            check_not_dangling(out, "output folder")
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
        check_not_dangling(path, "run folder")
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"run folder '{path}' is a file; pass another --out")
        if path.is_dir() and any(path.iterdir()):
            _clear_for_rerun(path, overwrite)
        path.mkdir(parents=True, exist_ok=True)
        if not _claim(path):
            raise RunFolderError(f"run folder '{path}' was just taken by another run; pass another --out")
        return path
    except OSError as e:
        if isinstance(e, RunFolderError):
            raise
        if e.errno == errno.ENAMETOOLONG:
            raise name_too_long(e, cfg, run_dir) from None
        raise storage_error(e, getattr(e, "filename", None) or cfg.output_dir, "output folder", OUTPUT_FIX) from e


def _clear_for_rerun(path: Path, overwrite: bool) -> None:
    """``path`` is a non-empty folder: clear the run in it, or refuse (see :func:`create_run_dir`)."""
    status = _status_of(path)
    is_run = status is not None or any((path / n).exists() for n in ("results.csv", "results.json"))
    foreign = foreign_entries(path)
    if not is_run:
        raise RunFolderError(f"'{path}' is not an overconf run folder (no {STATUS}) and holds "
                             f"{_listed(sorted(e.name for e in path.iterdir()))}; pass another --out (a new or "
                             f"empty folder): overconf deletes nothing it did not write")
    if _ended_without_results(path):  # a failed or interrupted run: re-running it replaces it
        log.info("replacing the unfinished run in %s", path)
        overwrite = True
    if not overwrite:
        what = "a run that is still running or was killed" if status == "running" else "a run"
        raise RunFolderError(f"run folder '{path}' already holds {what}; pass another --out, or "
                             f"--overwrite to delete it and run again")
    if foreign:
        raise RunFolderError(f"run folder '{path}' also holds files overconf did not write: {_listed(foreign)}; "
                             f"move them elsewhere (overconf deletes only the run's own files before running "
                             f"again), or pass another --out")
    log.info("clearing the run in %s", path)
    clear_run(path)
