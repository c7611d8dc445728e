from __future__ import annotations

import torch

from .base import DEFENSES, ReleaseDefense


@DEFENSES.register("none")
class NoDefense(ReleaseDefense):
    """Releases the outputs unchanged."""

    name = "none"

    def release(self, log_probs: torch.Tensor) -> torch.Tensor:
        return log_probs
