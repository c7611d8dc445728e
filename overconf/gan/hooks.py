"""What a study runs after each evaluated cell when ``gan.stream`` or ``gan.search`` is on: the
streaming FPR over unlimited fakes and the latent search, against the cell's target (with its
calibration) and the attacks fitted on its shadow. Attacks that need extra signals
(``Attack.requires``) cannot score a stream of fresh inputs and are skipped (the report says so).

Rows (attack, source, metric, value): ``<fake>_stream`` with fpr, fpr_ci_low, fpr_ci_high
(Clopper-Pearson), flagged, samples per attack and samples_per_second; ``<fake>_searched`` and
``<fake>_random`` with fpr, its interval, flagged and samples per attack and the mean max score.
``<fake>`` is ``fake`` or ``fake_conditional``. The curves and images go to ``cell.extensions``.
"""
from __future__ import annotations

from ..seeding import generator
from .search import search_and_score
from .streaming import FakePipeline, stream
from .training import study_generator


def source_prefix(conditional: bool) -> str:
    return "fake_conditional" if conditional else "fake"


def unstreamable(attacks) -> dict[str, str]:
    """Attacks that need extra signals per input (``Attack.requires``) -> why they cannot score fresh fakes."""
    return {a.label: f"needs extra signals ({', '.join(getattr(r, 'key', r) for r in a.requires)})"
            for a in attacks if a.requires}


def gan_hook_rows(study, cell) -> list[tuple[str, str, str, float]]:
    g = study.cfg.gan
    if not (g.stream.samples or g.search.samples):
        return []
    skipped = unstreamable(study.attacks)
    fitted = {k: f for k, f in cell.fitted.items() if k not in skipped}
    confidence = study.cfg.metrics.confidence
    rows = []

    def pipeline(conditional: bool) -> FakePipeline:
        trained = study_generator(g, study.dataset, study.splits, cell.seed, conditional, study.cache, study.device,
                                  progress=study.cfg.progress, log_dir=study.gan_log_dir)
        return FakePipeline(trained.generator, cell.target.model, cell.target_calibration, study.dataset.mean,
                            study.dataset.std, study.device)

    if g.stream.samples:
        s = g.stream
        src = f"{source_prefix(s.conditional)}_stream"
        curve = stream(pipeline(s.conditional), fitted, samples=s.samples, batch_size=s.batch_size,
                       generator=generator(cell.seed, "gan", "stream", s.conditional, device=study.device),
                       psi=s.psi, confidence=confidence, progress=study.cfg.progress,
                       desc=f"{src} {cell.model} {cell.setting} s{cell.seed}")
        cell.extensions["stream"] = curve
        for a in fitted:
            lo, hi = curve.interval(a)
            rows += [(a, src, "fpr", curve.fpr(a)[-1]), (a, src, "fpr_ci_low", lo[-1]), (a, src, "fpr_ci_high", hi[-1]),
                     (a, src, "flagged", curve.flagged[a][-1]), (a, src, "samples", curve.samples[-1])]
        rows.append(("-", src, "samples_per_second", curve.throughput))
    if g.search.samples:
        s = g.search
        prefix = source_prefix(s.conditional)
        result = search_and_score(pipeline(s.conditional), fitted, samples=s.samples, batch_size=s.batch_size,
                                  steps=s.steps, lr=s.lr, kind=s.objective, psi=s.psi, confidence=confidence,
                                  generator=generator(cell.seed, "gan", "search", s.conditional, device=study.device))
        cell.extensions["search"] = result
        for kind in ("random", "searched"):
            src = f"{prefix}_{kind}"
            for a in fitted:
                lo, hi = result.interval(kind, a)
                rows += [(a, src, "fpr", result.fpr(kind, a)), (a, src, "fpr_ci_low", lo), (a, src, "fpr_ci_high", hi),
                         (a, src, "flagged", result.flagged[kind][a]), (a, src, "samples", result.samples)]
            rows.append(("-", src, "mean_max_score", float(result.max_score[kind].double().mean())))
    return rows
