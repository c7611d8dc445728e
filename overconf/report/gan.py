"""The GAN parts of a run's report: the "unlimited false positives" curve (FPR with its
Clopper-Pearson band and the flagged count as the number of streamed fakes M grows) as a figure
and as TensorBoard scalars with step = M, grids of random vs searched fakes, and the summary
section (generators, FID with the features used, streaming and latent-search tables)."""
from __future__ import annotations

from pathlib import Path

from .artifacts import plt
from .figures import slug
from .tables import Table, markdown_table, ordered

GAN_SOURCES = ("fake", "fake_conditional")


def stream_figures(result, folder: Path) -> list[Path]:
    written = []
    for cell in result.cells:
        curve = cell.extensions.get("stream")
        if curve is None or not curve.flagged:
            continue
        fig, (ax_fpr, ax_n) = plt.subplots(1, 2, figsize=(10, 3.8))
        for i, (attack, flagged) in enumerate(curve.flagged.items()):
            lo, hi = curve.interval(attack)
            ax_fpr.plot(curve.samples, curve.fpr(attack), color=f"C{i}", label=attack)
            ax_fpr.fill_between(curve.samples, lo, hi, color=f"C{i}", alpha=0.2)
            ax_n.plot(curve.samples, flagged, color=f"C{i}", label=attack)
        ax_n.plot(curve.samples, curve.samples, "k:", lw=0.8, label="every fake")
        ax_fpr.set(xscale="log", ylim=(0, 1.02), xlabel="fakes scored M",
                   ylabel=f"FPR ({curve.confidence:.0%} Clopper-Pearson)")
        ax_n.set(xscale="log", yscale="symlog", ylim=(0, None), xlabel="fakes scored M",
                 ylabel="fakes flagged as members")
        ax_fpr.legend(fontsize="small")
        ax_n.legend(fontsize="small")
        fig.suptitle(f"unlimited false positives: {cell.model} / {cell.setting} / seed {cell.seed} "
                     f"({curve.throughput:,.0f} fakes/s)")
        fig.tight_layout()
        path = folder / f"fake_stream_{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def gan_tensorboard(result, folder: Path) -> None:
    """Per cell: stream/<attack>/{fpr,fpr_ci_low,fpr_ci_high,flagged} at step M; search grids."""
    if not any(c.extensions.get("stream") is not None or c.extensions.get("search") is not None
               for c in result.cells):
        return  # nothing to log: skip the TensorBoard and torchvision imports (seconds)
    from torch.utils.tensorboard import SummaryWriter
    from torchvision.utils import make_grid

    from .tensorboard import run_name

    for cell in result.cells:
        curve, search = cell.extensions.get("stream"), cell.extensions.get("search")
        if curve is None and search is None:
            continue
        writer = SummaryWriter(log_dir=str(folder / run_name(cell)))
        if curve is not None:
            for attack, flagged in curve.flagged.items():
                lo, hi = curve.interval(attack)
                for j, m in enumerate(curve.samples):
                    step = int(m)
                    writer.add_scalar(f"stream/{attack}/fpr", flagged[j] / m, step)
                    writer.add_scalar(f"stream/{attack}/fpr_ci_low", lo[j], step)
                    writer.add_scalar(f"stream/{attack}/fpr_ci_high", hi[j], step)
                    writer.add_scalar(f"stream/{attack}/flagged", flagged[j], step)
        if search is not None:
            for kind, images in search.images.items():
                top = images[:64].float() / 255
                writer.add_image(f"search/{kind}", make_grid(top, nrow=8, padding=1, pad_value=1.0), 0)
            for step, loss in enumerate(search.losses):
                writer.add_scalar("search/objective", loss, step)
        writer.close()


def gan_summary(rows: list[dict], cfg) -> list[str]:
    """Markdown lines of the GAN section (empty when the study has no GAN source or hook)."""
    gan_sources = [s for s in ordered(rows, "source") if s in GAN_SOURCES]
    streamed = [s for s in ordered(rows, "source") if s.endswith("_stream")]
    searched = [s for s in ordered(rows, "source") if s.endswith("_searched")]
    if not (gan_sources or streamed or searched):
        return []
    t = Table(rows)
    g = cfg.gan
    models, settings = ordered(rows, "model"), ordered(rows, "setting")
    attacks = ordered(rows, "attack", exclude=("-",))
    m0, s0 = models[0], settings[0]
    n_train = "all" if g.train_images is None else g.train_images
    params = f" ({', '.join(f'{k}={v}' for k, v in g.params.items())})" if g.params else ""
    out = ["## GAN fakes", "",
           f"Generators: {g.arch}{params} trained on {n_train} reserve images (disjoint from every "
           f"member set) for {g.steps} steps of batch {g.batch_size}.", ""]
    if gan_sources:
        out += [f"FID against as many target-test images; features: {g.fid.features}. `FID real`: reserve "
                f"images neither network saw, against the same test images (the floor at this sample size).", ""]
        body = [[s, t.fmt(m0, s0, "-", s, "fid", digits=2), t.fmt(m0, s0, "-", s, "fid_real", digits=2),
                 t.fmt(m0, s0, "-", s, "gan_train_seconds", digits=1)] for s in gan_sources]
        out += [markdown_table(["source", "FID", "FID real", "GAN training s"], body), ""]
    skipped = _skipped(cfg)
    if (streamed or searched) and skipped:
        out += ["Not streamed or searched (they need extra signals per input): " + ", ".join(skipped) + ".", ""]

    def table(src: str, attack_cell, last: str, last_cell) -> str:
        shown = [a for a in attacks if t.get(m0, s0, a, src, "fpr")]
        body = [[m, s] + [attack_cell(m, s, a) for a in shown] + [last_cell(m, s)] for m in models for s in settings]
        return markdown_table(["model", "setting"] + shown + [last], body)

    for src in streamed:
        out += [f"Streaming (`{src}`): FPR [{cfg.metrics.confidence:.0%} Clopper-Pearson] and flagged / scored "
                f"fakes; figures/fake_stream_*.png and TensorBoard `stream/` show the curve over M.", "",
                table(src, lambda m, s, a: f"{t.fmt(m, s, a, src, 'fpr')} [{t.fmt(m, s, a, src, 'fpr_ci_low')}, "
                                           f"{t.fmt(m, s, a, src, 'fpr_ci_high')}] "
                                           f"{t.fmt(m, s, a, src, 'flagged', digits=0)}"
                                           f"/{t.fmt(m, s, a, src, 'samples', digits=0)}",
                      "fakes/s", lambda m, s: t.fmt(m, s, "-", src, "samples_per_second", digits=0)), ""]
    for src in searched:
        rnd = src.replace("_searched", "_random")
        out += [f"Latent search ({g.search.objective}, {g.search.steps} steps): FPR of random fakes -> the "
                f"same fakes after the search; mean max score likewise.", "",
                table(src, lambda m, s, a: f"{t.fmt(m, s, a, rnd, 'fpr')} -> {t.fmt(m, s, a, src, 'fpr')}",
                      "mean max score", lambda m, s: f"{t.fmt(m, s, '-', rnd, 'mean_max_score', digits=4)} -> "
                                                     f"{t.fmt(m, s, '-', src, 'mean_max_score', digits=4)}"), ""]
    return out


def _skipped(cfg) -> list[str]:
    from ..attacks import ATTACKS
    from overconf.gan.cell_hooks import unstreamable

    return list(unstreamable([ATTACKS[c.name](**c.params) for c in cfg.attacks]))


def write_gan_report(result, run_dir: Path) -> None:
    cfg = result.config
    if cfg.report.figures:  # study_figures made the folder
        stream_figures(result, run_dir / "figures")
    if cfg.report.tensorboard:
        gan_tensorboard(result, run_dir / "tensorboard")

