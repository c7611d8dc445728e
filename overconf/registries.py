"""Every registry in one place (importing this module registers every built-in member)."""
from .attacks import ATTACKS
from .calibrations import CALIBRATIONS
from .data.datasets import DATASETS
from .data.sources import SOURCES
from .gan.models import GANS
from .models import MODELS
from .signals import SIGNALS

ALL = {"datasets": DATASETS, "sources": SOURCES, "architectures": MODELS, "attacks": ATTACKS,
       "calibrations": CALIBRATIONS, "signals": SIGNALS, "gans": GANS}

__all__ = ["ATTACKS", "CALIBRATIONS", "DATASETS", "SOURCES", "MODELS", "SIGNALS", "GANS", "ALL"]
