"""The catalog: every registry of every family in one place (importing this module registers every
built-in member). The Registry class itself is overconf.registry.

Runner layer: it imports every family (attacks, sources incl. GAN sources, reference signals, ...).
"""
from .analysis import ANALYSES
from .attacks import ATTACKS
from .calibrations import CALIBRATIONS
from .data.datasets import DATASETS
from .defenses import DEFENSES
from .data.sources import SOURCES
from .gan.models import GANS
from .models import MODELS
from .signals import SIGNALS
from .gan import sources as _gan_sources  # noqa: F401  (registers fake, fake_conditional)
from .reference import signals as _reference_signals  # noqa: F401  (registers reference_logits, ...)
from .gan import hooks as _gan_hooks  # noqa: F401  (registers the post-cell hook "gan")
from .hooks import CELL_HOOKS

ALL = {"datasets": DATASETS, "sources": SOURCES, "architectures": MODELS, "attacks": ATTACKS,
       "calibrations": CALIBRATIONS, "defenses": DEFENSES, "signals": SIGNALS, "gans": GANS,
       "analyses": ANALYSES}
"""the config-visible families (overconf.names mirrors their names); post-cell hooks: CELL_HOOKS"""

__all__ = ["ANALYSES", "CELL_HOOKS", "ATTACKS", "CALIBRATIONS", "DEFENSES", "DATASETS", "SOURCES", "MODELS", "SIGNALS", "GANS", "ALL"]
