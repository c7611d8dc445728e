"""Errors a user can act on: each message names the problem and the fix."""


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
