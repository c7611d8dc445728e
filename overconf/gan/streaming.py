"""Streaming evaluation: score M fresh GAN samples against the fitted attacks in batches, never
holding them, and report the false-positive rate with an exact binomial (Clopper-Pearson) interval
and the number of flagged samples as M grows: the reference study's "potentially infinite number
of false positives" (Hintersdorf et al. 2022), measured.

Every fake goes through the same pipeline as a ``fake`` source's samples: G(z, y) -> uint8
pixels -> normalization -> target model -> calibrated log-probabilities -> attack score >=
threshold. Everything stays on the device; flagged counts are summed there and read once at the
end (and once per progress readout).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..attacks import Fitted, Signals
from ..calibrations import Calibration
from overconf.core.device import autocast, float32_head, memory_format
from ..metrics.membership import clopper_pearson
from overconf.signals.outputs import Outputs
from .sampling import class_labels, latent


class FakePipeline:
    """G(z, y) -> what the target and the attacks see, on the device, one batch at a time."""

    def __init__(self, gen: torch.nn.Module, model: torch.nn.Module, calibration: Calibration,
                 mean: torch.Tensor, std: torch.Tensor, device: torch.device):
        self.gen, self.model, self.calibration, self.device = gen.eval(), model.eval(), calibration, device
        self.mean = mean.to(device).view(1, -1, 1, 1)
        self.std = std.to(device).view(1, -1, 1, 1)
        self._cpu_only: set[str] = set()

    def pixels(self, z: torch.Tensor, y: torch.Tensor | None, straight_through: bool = False) -> torch.Tensor:
        """Float pixels in [0, 255], rounded as the uint8 images of a source are; with
        ``straight_through`` the rounding passes gradients unchanged (for the latent search)."""
        with autocast(self.device):
            g = self.gen(z, y)
        p = (g.float() + 1) * 127.5
        r = p.round().clamp(0, 255)
        return p + (r - p).detach() if straight_through else r

    def inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels / 255 - self.mean) / self.std
        return x.contiguous(memory_format=memory_format(self.device))

    def logits_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device):
            f = self.model.features(x)
            z = float32_head(self.model.head, f)
        return z.float(), f.float()

    def signals(self, z: torch.Tensor, y: torch.Tensor | None, labels: torch.Tensor) -> Signals:
        logits, feats = self.logits_features(self.inputs(self.pixels(z, y)))
        outs = Outputs(logits, feats, labels)
        log_probs = self._run("calibration", lambda o: self.calibration.log_probs(o), outs)
        return Signals(log_probs, labels)

    def flagged(self, label: str, fitted: Fitted, signals: Signals) -> torch.Tensor:
        """How many of ``signals`` the attack flags (a 0-d tensor, not read)."""
        return self._run(label, lambda s: (fitted.score(s) >= fitted.threshold).sum(), signals)

    def _run(self, name: str, fn, arg):
        """``fn(arg)`` on the device; a step holding CPU-only modules (an attack's MLP, a CPU
        calibration) is moved to the CPU the first time it fails and stays there."""
        if name not in self._cpu_only:
            try:
                return fn(arg)
            except RuntimeError:
                if self.device.type == "cpu":
                    raise
                self._cpu_only.add(name)
        return fn(_to_cpu(arg))


def _to_cpu(obj):
    if isinstance(obj, Outputs):
        return Outputs(obj.logits.cpu(), obj.features.cpu(), obj.labels.cpu())
    return Signals(obj.log_probs.cpu(), obj.labels.cpu(), {k: v.cpu() for k, v in obj.extra.items()})


@dataclass
class StreamCurve:
    """Flagged counts of each attack after every batch of a stream of fakes."""

    samples: np.ndarray
    """M after each batch"""
    flagged: dict[str, np.ndarray]
    seconds: float
    confidence: float = 0.95

    def fpr(self, attack: str) -> np.ndarray:
        return self.flagged[attack] / self.samples

    def interval(self, attack: str) -> tuple[np.ndarray, np.ndarray]:
        return clopper_pearson(self.flagged[attack], self.samples, self.confidence)

    @property
    def throughput(self) -> float:
        """fakes generated and scored per second"""
        return float(self.samples[-1] / self.seconds) if len(self.samples) else 0.0


@torch.inference_mode()
def stream(pipeline: FakePipeline, fitted: dict[str, Fitted], *, samples: int, batch_size: int,
           generator: torch.Generator, psi: float | None = None, classes: list[int] | None = None,
           confidence: float = 0.95, progress: bool = False, desc: str = "stream",
           readouts: int = 10) -> StreamCurve:
    """Generate and score ``samples`` fakes; z is drawn batch by batch from ``generator`` (on the
    device), classes cycle through ``classes`` for a conditional generator."""
    gen, device = pipeline.gen, pipeline.device
    counts: dict[str, list[torch.Tensor]] = {a: [] for a in fitted}
    ends = []
    readout_every = max(1, -(-samples // batch_size) // max(1, readouts))
    bar = tqdm(total=samples, desc=desc, disable=not progress, leave=False, unit="fake")
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, samples, batch_size)):
        b = min(batch_size, samples - start)
        z = latent(b, gen.latent_dim, generator=generator, psi=psi)
        y = class_labels(b, classes, gen.num_classes, start, device) if gen.conditional else None
        labels = y if y is not None else torch.full((b,), -1, dtype=torch.long, device=device)
        sig = pipeline.signals(z, y, labels)
        for a, fit in fitted.items():
            counts[a].append(pipeline.flagged(a, fit, sig))
        ends.append(start + b)
        bar.update(b)
        if progress and fitted and (i + 1) % readout_every == 0:
            a = next(iter(fitted))
            bar.set_postfix({f"fpr {a}": f"{float(sum(counts[a])) / (start + b):.3f}"})  # one sync per readout
    flagged = {a: torch.stack(v).cpu().cumsum(0).numpy() if v else np.zeros(0)
               for a, v in counts.items()}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    bar.close()
    return StreamCurve(np.asarray(ends, dtype=np.int64), flagged, seconds, confidence)
