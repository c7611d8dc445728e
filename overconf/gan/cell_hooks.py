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

from overconf.signals.contexts import SeedContext
from overconf.signals.cell_hooks import CELL_HOOKS, CellContext, Row
from overconf.core.seeding import generator
from overconf.gan.generators import seed_generator
from overconf.gan.search import search_and_score
from overconf.gan.streaming import FakePipeline, stream


def source_prefix(conditional: bool) -> str:
    return "fake_conditional" if conditional else "fake"


def unstreamable(attacks) -> dict[str, str]:
    """Attacks that need extra signals per input (``Attack.requires``) -> why they cannot score fresh fakes."""
    return {a.label: f"needs extra signals ({', '.join(getattr(r, 'key', r) for r in a.requires)})"
            for a in attacks if a.requires}


@CELL_HOOKS.register("gan")
def gan_hook_rows(ctx: SeedContext, cell: CellContext) -> list[Row]:
    """The streaming FPR and the latent search of one cell (``gan.stream``, ``gan.search``)."""
    g = ctx.gan
    if not (g.stream.samples or g.search.samples):
        return []
    skipped = unstreamable(cell.attacks)
    fitted = {k: f for k, f in cell.fitted.items() if k not in skipped}
    confidence = ctx.metrics.confidence
    rows = []

    def pipeline(conditional: bool) -> FakePipeline:
        trained = seed_generator(ctx, conditional)
        return FakePipeline(trained.generator, cell.target.model, cell.target_calibration, ctx.dataset.mean,
                            ctx.dataset.std, ctx.device)

    if g.stream.samples:
        s = g.stream
        src = f"{source_prefix(s.conditional)}_stream"
        curve = stream(pipeline(s.conditional), fitted, samples=s.samples, batch_size=s.batch_size,
                       generator=generator(cell.seed, "gan", "stream", s.conditional, device=ctx.device),
                       psi=s.psi, confidence=confidence, progress=ctx.progress,
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
                                  generator=generator(cell.seed, "gan", "search", s.conditional, device=ctx.device))
        cell.extensions["search"] = result
        for kind in ("random", "searched"):
            src = f"{prefix}_{kind}"
            for a in fitted:
                lo, hi = result.interval(kind, a)
                rows += [(a, src, "fpr", result.fpr(kind, a)), (a, src, "fpr_ci_low", lo), (a, src, "fpr_ci_high", hi),
                         (a, src, "flagged", result.flagged[kind][a]), (a, src, "samples", result.samples)]
            rows.append(("-", src, "mean_max_score", float(result.max_score[kind].double().mean())))
    return rows
