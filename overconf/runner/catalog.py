"""The catalog: every registry of every family in one place (importing this module registers every
built-in member). The Registry class itself is overconf.core.registry.

Runner layer: it imports every family (attacks, sources incl. GAN sources, reference signals, ...).
"""
from overconf.analysis import ANALYSES
from overconf.attacks import ATTACKS
from overconf.calibrations import CALIBRATIONS
from overconf.data.datasets import DATASETS
from overconf.defenses import DEFENSES
from overconf.data.sources import SOURCES
from overconf.gan.models import GANS
from overconf.models import MODELS
from overconf.signals.producers import SIGNALS
from overconf.gan import sources as _gan_sources  # noqa: F401  (registers fake, fake_conditional)
from overconf.reference import signals as _reference_signals  # noqa: F401  (registers reference_logits, ...)
from overconf.gan import cell_hooks as _gan_hooks  # noqa: F401  (registers the post-cell hook "gan")
from overconf.signals.cell_hooks import CELL_HOOKS

ALL = {"datasets": DATASETS, "sources": SOURCES, "architectures": MODELS, "attacks": ATTACKS,
       "calibrations": CALIBRATIONS, "defenses": DEFENSES, "signals": SIGNALS, "gans": GANS,
       "analyses": ANALYSES}
"""the config-visible families (overconf.core.names mirrors their names); post-cell hooks: CELL_HOOKS"""

__all__ = ["ANALYSES", "CELL_HOOKS", "ATTACKS", "CALIBRATIONS", "DEFENSES", "DATASETS", "SOURCES", "MODELS", "SIGNALS", "GANS", "ALL"]
