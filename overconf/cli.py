"""The ``overconf`` command line."""
from __future__ import annotations

import argparse
import inspect
import logging
import signal
import sys
from pathlib import Path

from overconf.core.errors import OverconfError, os_error_message
from overconf.core.interrupts import Terminated, sigterm_as_interrupt

DESCRIPTION = """\
overconf: do score-based membership inference attacks flag data the model never saw?

Trains target and shadow classifiers (cached by content in checkpoints/), scores members and
non-member sources (unseen test images, OOD data, noise, transformed inputs), runs the attacks
fitted on the shadow model, and reports false-positive rates per source and setting.
"""

EPILOG = """\
examples:
  overconf run experiments/fashion_mnist.yaml
  overconf run experiments/fashion_mnist.yaml --set recipe.epochs=5 --set seeds=[0,1]
  overconf run experiments/calibration_fashion_mnist.yaml
  overconf audit experiments/audit_example/audit.yaml
  overconf compare runs/calibration_fashion_mnist-*/ --baseline baseline
  overconf analyze runs/vulnerability_fashion_mnist-*/ --only vulnerability
  overconf list attacks
  overconf sample experiments/fashion_mnist.yaml --out samples/ --n 64 --conditional --classes 0,3
  tensorboard --logdir runs/
"""


def cmd_run(args) -> int:
    from .config import read_config
    from .config.factors import is_factors

    if is_factors(args.config):  # study: causal_factors (overconf.runner.factors)
        return cmd_run_factors(args)
    from .config.audit import is_audit

    if is_audit(args.config):  # study: audit (overconf.runner.audit)
        return cmd_audit(args)
    cfg = read_config(args.config, (args.set or []) + executor_sets(args))  # config errors before torch loads
    from overconf.runner.study import Study
    from overconf.runner.validation import validate_components

    validate_components(cfg)
    if args.device:
        cfg.device = args.device
    if args.no_progress:
        cfg.progress = False
    study = Study(cfg, args.out, overwrite=args.overwrite)
    result = study.run()
    print((result.run_dir / "summary.md").read_text())
    print(f"\nresults:     {result.run_dir}/results.csv (and results.json, summary.md, report.html)")
    print(f"figures:     {result.run_dir}/figures/")
    print(f"tensorboard: tensorboard --logdir {result.run_dir}/tensorboard")
    return 0


def executor_sets(args) -> list[str]:
    """``--executor`` / ``--ray-address`` as ``--set`` items (they win over the config's keys)."""
    sets = [f"executor={args.executor}"] if args.executor else []
    return sets + ([f"ray.address={args.ray_address}"] if args.ray_address else [])


def cmd_run_factors(args) -> int:
    from .config.factors import read_factors

    cfg = read_factors(args.config, args.set or [])  # config errors before torch loads
    cfg.device = args.device or cfg.device
    cfg.progress = cfg.progress and not args.no_progress
    from overconf.runner.factors import run_factors

    result = run_factors(cfg, args.out, overwrite=args.overwrite)
    print((result.run_dir / "summary.md").read_text())
    print(f"\nfactor table: {result.run_dir}/factors.csv (effects.csv, edges.csv, figures/)")
    return 0


def cmd_audit(args) -> int:
    """Audit the user's model: ``study: audit`` (docs/audit.md)."""
    from .config.audit import is_audit, read_audit
    if not is_audit(args.config):
        raise OverconfError(f"'{args.config}' is not an audit config (a YAML file with 'study: audit', docs/audit.md, "
                            f"e.g. experiments/audit_example/audit.yaml); run studies with 'overconf run'")
    cfg = read_audit(args.config, (args.set or []) + executor_sets(args))  # config errors before torch loads
    cfg.device = args.device or cfg.device
    cfg.progress = cfg.progress and not args.no_progress
    from overconf.runner.audit import prepare_audit, run_audit

    plan = prepare_audit(cfg, Path(args.config).resolve().parent)
    result = run_audit(plan, args.out, overwrite=args.overwrite)
    print(f"{(result.run_dir / 'summary.md').read_text()}\nresults:     {result.run_dir}/results.csv (and results.json, "
          f"summary.md, audit.yaml)\ntensorboard: tensorboard --logdir {result.run_dir}/tensorboard")
    return 0


def cmd_sample(args) -> int:
    from .config import read_config

    cfg = read_config(args.config, args.set or [])  # config errors before torch loads
    if args.nrow is not None and args.nrow < 1:
        raise OverconfError(f"--nrow must be >= 1 (images per grid row), got {args.nrow}")
    from overconf.core.device import resolve_device
    from .gan.export import write_samples
    from overconf.runner.validation import validate_components

    validate_components(cfg)
    w = write_samples(cfg, args.out, n=args.n, device=resolve_device(args.device or cfg.device), psi=args.psi,
                      classes=args.classes, conditional=args.conditional, seed=args.seed,
                      study_seed=args.study_seed, nrow=args.nrow, progress=not args.no_progress)
    print(f"generator {w.trained.key} ({'conditional' if args.conditional else 'unconditional'}, study seed "
          f"{w.study_seed}, trained in {w.trained.seconds:.0f} s)")
    print(f"grid:    {w.grid}\ntensors: {w.tensors} (uint8 images, labels, z)")
    return 0


def cmd_compare(args) -> int:
    import datetime

    from .report.comparison_report import attack_table, model_table, write_comparison
    from .report.runs import load_run
    from .report.tables import markdown_table
    from .report.verdicts import verdicts_markdown

    resolved = [Path(d).resolve() for d in args.run_dirs]
    twice = next((d for d, r in zip(args.run_dirs, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise OverconfError(f"run folder '{twice}' is given twice; list each run once")
    runs = [load_run(d) for d in args.run_dirs]
    if args.out:
        out = Path(args.out)
    elif len(runs) == 1:
        out = runs[0].run_dir / "comparison"
    else:
        out = runs[0].run_dir.parent / f"comparison-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    c, _ = write_comparison(runs, out, attack=args.attack, baseline=args.baseline, figures=not args.no_figures)
    print(f"dataset: {c.dataset}, attack: {c.attack}")
    for note in c.notes:
        print(f"note: {note}")
    print()
    print(markdown_table(*model_table(c)), end="\n\n")
    print(markdown_table(*attack_table(c)), end="\n\n")
    print(verdicts_markdown(c))
    print(f"\ncomparison: {out}/comparison.md (and report.html, comparison.csv, figures/)")
    return 0


def cmd_analyze(args) -> int:
    from .api import analyze_sets

    run = analyze_sets(args.run_dir, args.only, args.set or [])
    print((run.run_dir / "analysis" / "analysis.md").read_text())
    print(f"\nanalysis: {run.run_dir}/analysis/ (analysis.md, rows.csv, tables, figures); "
          f"cache: {run.cache_hits} hits, {run.cache_misses} computed")
    return 0


def cmd_list(args) -> int:
    from overconf.runner.catalog import ALL

    families = [args.family] if args.family else list(ALL)
    for fam in families:
        if fam not in ALL:
            raise OverconfError(f"unknown family '{fam}'; use one of: {', '.join(ALL)}")
        print(f"{fam}:")
        reg = ALL[fam]
        for name in reg.names():
            doc = inspect.getdoc(reg[name]) or ""
            print(f"  {name:20s} {doc.splitlines()[0] if doc else ''}")
    return 0


def cmd_cache(args) -> int:
    root = Path(args.cache_dir)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise OverconfError(f"cache folder '{root}' {what}; pass the cache_dir of your studies with "
                            f"--cache-dir DIR (default: checkpoints, relative to where 'overconf run' ran)")
    total = 0
    for kind in sorted(p for p in root.iterdir() if p.is_dir()):
        files = list(kind.glob("*.pt"))
        size = sum(f.stat().st_size for f in files)
        total += size
        print(f"{kind.name:12s} {len(files):6d} entries {size / 2**20:10.1f} MiB")
    print(f"{'total':12s} {'':6s}         {total / 2**20:10.1f} MiB in {root}")
    return 0


def study_arguments(p: argparse.ArgumentParser) -> None:
    """What every command that loads a study config takes: the YAML, overrides, device, progress."""
    p.add_argument("config", help="study YAML (see experiments/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set recipe.epochs=5 (repeatable; values are YAML)")
    p.add_argument("--device", help="auto, cpu or cuda[:N] (default: the config's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_arguments(p: argparse.ArgumentParser) -> None:
    """What every command that writes a run folder takes: the folder, overwriting, the executor."""
    p.add_argument("--out", help="run folder (default: <output_dir>/<name>-<timestamp>, a new folder for every "
                                 "run); a folder that holds a run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="with --out: delete the run already in that folder first (only the files and folders "
                        "overconf writes; a folder holding anything else is refused)")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where trainings and outputs run: local (default) or ray, as tasks on a Ray runtime "
                        "(needs pip install 'overconf[ray]'; docs/guide/ray.md)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: the cluster to connect to (e.g. ray://head:10001 or auto; "
                        "default: start a local Ray runtime)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="overconf", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run a study from a YAML config",
                       description="Run a study: a grid over seeds x models x settings. Reuses every "
                                   "cached model and output; writes results.csv/json, summary.md, "
                                   "figures/ and tensorboard/ to the run folder.")
    study_arguments(r)
    run_arguments(r)
    r.set_defaults(func=cmd_run)

    au = sub.add_parser("audit", help="audit your own trained model (study: audit; docs/audit.md)",
                        description="Audit a model you trained (factory, weights, recipe, data, normalisation): "
                                    "shadow and reference models trained like it, every attack on every source.")
    study_arguments(au)
    run_arguments(au)
    au.set_defaults(func=cmd_audit)

    s = sub.add_parser("sample", help="write samples of a study's GAN (trains it if not cached)",
                       description="Load the study's generator (the gan: section; trained on the reserve split "
                                   "of the study seed, cached) or train it, then write a PNG grid and a .pt "
                                   "file of uint8 images, labels and latents.")
    study_arguments(s)
    s.add_argument("--out", required=True, help="folder for samples.png and samples.pt")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--psi", type=float, help="truncation: z drawn from N(0, 1) truncated to [-psi, psi]")
    s.add_argument("--classes", help="comma-separated class indices or names (needs --conditional)")
    s.add_argument("--conditional", action="store_true", help="the class-conditional generator")
    s.add_argument("--seed", type=int, default=0, help="seed of the latent draw (default 0)")
    s.add_argument("--study-seed", type=int, help="study seed whose generator to use (default: the first)")
    s.add_argument("--nrow", type=int, help="images per grid row (default: one column per class, or square)")
    s.set_defaults(func=cmd_sample)

    cp = sub.add_parser("compare", help="compare the settings of one or more finished runs side by side",
                        description="One row per (run, model, setting): test accuracy, ECE, overconfidence "
                                    "error, mean max confidence per source, TPR, FPR on test, AUROC, TPR at 1% "
                                    "FPR, FPR per source, mean OOD and fake FPR; the reference study's findings "
                                    "checked with numbers; trade-off curve, FPR bars against the baseline, "
                                    "max-score densities with Wasserstein distances and reliability diagrams. "
                                    "Reads config.yaml, results.json and per_sample.pt; runs no model.")
    cp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by 'overconf run'")
    cp.add_argument("--out", help="output folder (default: RUN_DIR/comparison for one run, else "
                                  "comparison-<timestamp> next to the first run)")
    cp.add_argument("--baseline", help="the setting others are compared with (default: 'baseline', else the "
                                       "first setting that changes nothing)")
    cp.add_argument("--attack", help="attack whose rates are compared (default: max_score, else the first)")
    cp.add_argument("--no-figures", action="store_true", help="tables only")
    cp.set_defaults(func=cmd_compare)

    an = sub.add_parser("analyze", help="run analyses (vulnerable samples, ...) on a finished run",
                        description="Run the analyses of the run's 'analysis:' section (or --only) on its cached "
                                    "models and outputs (nothing is retrained); writes RUN_DIR/analysis/ "
                                    "(analysis.md, linked from summary.md; rows.csv; tables as CSV and "
                                    "Parquet; figures as PNG and in tensorboard/analysis/).")
    an.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by 'overconf run'")
    an.add_argument("--only", help="comma-separated analyses (default: the config's analysis: section)")
    an.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a config key, e.g. --set analysis.vulnerability.fprs=[0.01] (repeatable)")
    an.set_defaults(func=cmd_analyze)

    ls = sub.add_parser("list", help="list registered datasets, sources, architectures, attacks, ...")
    ls.add_argument("family", nargs="?", help="one family only")
    ls.set_defaults(func=cmd_list)

    c = sub.add_parser("cache", help="show what the checkpoint cache holds")
    c.add_argument("--cache-dir", default="checkpoints")
    c.set_defaults(func=cmd_cache)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # our progress at INFO; other libraries' chatter (laplace-torch logs at INFO on the root
    # logger) only from WARNING up, or with --verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("overconf").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():
            return args.func(args)
    except OverconfError as e:
        logging.getLogger("overconf").debug("traceback", exc_info=True)
        print(f"overconf: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only folders, a file where a folder belongs
        logging.getLogger("overconf").debug("traceback", exc_info=True)
        print(f"overconf: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"overconf: {what}; finished models and outputs are cached, re-run to resume", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
