"""Errors a user can act on: each message names the problem and the fix."""
from __future__ import annotations

import errno
from pathlib import Path


class OverconfError(Exception):
    """Base class for errors reported to the user without a traceback."""


class ConfigError(OverconfError, ValueError):
    """A study config has an unknown key, an unknown value, or a value of the wrong type."""


class DataNotFoundError(OverconfError, FileNotFoundError):
    """A dataset is not on disk and may not be downloaded."""


class DataError(OverconfError):
    """A dataset or run file exists but is damaged (truncated, corrupt) or of the wrong kind."""


class RunFolderError(OverconfError, FileExistsError):
    """A run folder already holds a run (refused unless ``--overwrite``) or cannot be claimed."""


class IncompleteRunError(OverconfError):
    """A run folder whose run failed, was interrupted or is still running (no complete status)."""


class StorageError(OverconfError, OSError):
    """The cache or the output folder cannot be written (read-only, full, no permission)."""


class TrainingDivergedError(OverconfError, FloatingPointError):
    """Training produced a non-finite or exploding loss (or non-finite weights)."""


class InputError(ConfigError):
    """An argument of the Python API (``overconf.evaluate``, ``overconf.attacks``, ``overconf.metrics``)
    has the wrong shape, size or range (rules: :mod:`overconf.core.checks`)."""


class InputTypeError(InputError, TypeError):
    """An argument of the Python API has the wrong type or dtype (a bool where a number is meant,
    float labels, uint8 pixels, a tuple where a tensor is meant)."""


def os_error_message(e: OSError) -> str:
    """One line naming the file problem and its fix."""
    path = f"'{e.filename}'" if e.filename else "a file"
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk while writing {path} ({reason}); free some space or point "
                f"cache_dir / output_dir (--set cache_dir=DIR, --out DIR) at a larger disk, then re-run: "
                f"finished models and outputs are cached and every file is written atomically")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {path} ({reason}); make it writable or choose another folder "
                f"(--set output_dir=DIR or --out DIR for results, --set cache_dir=DIR for the cache)")
    if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        blocking = next((p for p in (Path(e.filename), *Path(e.filename).parents) if p.is_file()), None) \
            if e.filename else None
        if blocking is not None:
            path = f"'{blocking}' is a file, but a folder is needed there" + (
                f" (for {path})" if blocking != Path(e.filename) else "")
        return (f"{path} ({reason}); set cache_dir / output_dir (--set cache_dir=DIR, --out DIR) to a folder, "
                f"or move the file away")
    if e.errno == errno.ENOENT:
        return f"{path} does not exist ({reason}); check the path"
    return f"{path}: {reason}"
