#!/usr/bin/env python
"""Benchmarks: overconf's loops against bare PyTorch loops on the same model and device.

Each benchmark measures both sides in one run and prints their ratio, with the machine.

  python scripts/bench.py                        # every benchmark, defaults for the device
  python scripts/bench.py --only train,score --arch resnet18 --batch 512
  python scripts/bench.py --json bench.json      # also write the figures as JSON

Goals (on a GPU): training and scoring >= 0.9 of the bare loop for ResNet-18 at batch 512, bf16;
streaming GAN fakes (gan_stream): 1e6 fakes generated and scored by a ResNet-18 in under 30 s;
reference models (K = 32 SalemCNNs) trained batched >= 4x the models x images / s of training them
one after another (``reference_batched``; there "bare" is the sequential loop); DP-SGD's training
throughput against non-private training of the same model (``dp_sgd``, a ratio: DP's cost) and
batched against sequential DP-SGD for K reference models (``dp_sgd_batched``); MemGuard's
release queries/s, batched against one query at a time (``memguard``); fast_cifar (absolute):
256 reference models at >= 93% CIFAR-10 test accuracy in under 20 minutes; a fully cached
rerun of experiments/tiny.yaml (``cached_rerun``, absolute wall time): under 10 s on 2 CPU cores.
Ray executor: K reference models as Ray tasks on a local runtime with 2 workers vs the local
executor (``ray_reference``, "bare" = local), and the scheduling overhead per empty task
(``ray_overhead``, absolute).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overconf.config import Recipe  # noqa: E402
from overconf.core.device import autocast, memory_format, resolve_device, to_device_images  # noqa: E402
from overconf.models import build_model  # noqa: E402
from overconf.signals.outputs import compute_outputs  # noqa: E402
from overconf.training import train_classifier  # noqa: E402

BENCHES: dict[str, Callable[[argparse.Namespace, torch.device], dict]] = {}


def bench(name: str):
    def add(fn):
        BENCHES[name] = fn
        return fn

    return add


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu} x{os.cpu_count()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def synthetic(args, device, channels=3, size=32, classes=10):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, channels, size, size, generator=g)
    y = torch.randint(0, classes, (args.n,), generator=g)
    return x, y


def model_for(args, device):
    m = build_model(args.arch, in_channels=3, num_classes=10, image_size=32)
    return m.to(device, memory_format=memory_format(device))


@bench("train")
def bench_train(args, device) -> dict:
    """Training images/s: overconf.training.train_classifier vs a bare loop (same model, data,
    batch, optimizer, bf16 autocast and channels_last on CUDA)."""
    x, y = synthetic(args, device)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch, lr=1e-3)

    def bare():
        model = model_for(args, device)
        xd, yd = to_device_images(x, device), y.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(args.epochs):
            perm = torch.randperm(len(xd), device=device)
            for i in range(0, len(xd), args.batch):
                idx = perm[i: i + args.batch]
                with autocast(device):
                    loss = loss_fn(model(xd[idx]), yd[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def ours():
        train_classifier(model_for(args, device), x, y, recipe, seed=0, device=device, progress=False)

    return compare(bare, ours, args.n * args.epochs, device, args.repeats, "images/s")


@bench("score")
def bench_score(args, device) -> dict:
    """Scoring images/s: overconf.signals.outputs.compute_outputs (logits + features) vs bare forward passes."""
    x, _ = synthetic(args, device)
    model = model_for(args, device).eval()

    def bare():
        with torch.inference_mode():
            for i in range(0, len(x), args.batch):
                with autocast(device):
                    model(to_device_images(x[i: i + args.batch], device)).float().cpu()

    def ours():
        compute_outputs(model, x, device, batch_size=args.batch)

    return compare(bare, ours, args.n, device, args.repeats, "images/s")


@bench("gan_stream")
def bench_gan_stream(args, device) -> dict:
    """Fakes generated and scored per second on the streaming path: overconf.gan.streaming.stream
    (DCGAN -> uint8 pixels -> normalization -> target -> calibrated log-probabilities -> max-score
    and entropy decisions, counted on the device) vs a bare loop doing the same with one decision."""
    from overconf.attacks.threshold import Entropy, MaxScore
    from overconf.attacks import Fitted
    from overconf.calibrations import CALIBRATIONS
    from overconf.gan.models import dcgan
    from overconf.gan.streaming import FakePipeline, stream

    cuda = device.type == "cuda"
    gen, _ = dcgan(channels=3, image_size=32, width=64 if cuda else 16, latent_dim=128 if cuda else 64)
    gen = gen.to(device, memory_format=memory_format(device)).eval()
    target = model_for(args, device).eval()
    mean, std = torch.full((3, 1, 1), 0.5), torch.full((3, 1, 1), 0.25)
    pipe = FakePipeline(gen, target, CALIBRATIONS["none"](), mean, std, device)
    fitted = {"max_score": Fitted(MaxScore.score, -0.1), "entropy": Fitted(Entropy.score, -0.3)}
    m, b = args.stream_samples, args.stream_batch
    mu, sd = mean.to(device).view(1, 3, 1, 1), std.to(device).view(1, 3, 1, 1)

    def bare():
        g = torch.Generator(device=device).manual_seed(0)
        flagged = torch.zeros((), dtype=torch.long, device=device)
        with torch.inference_mode():
            for i in range(0, m, b):
                z = torch.randn(min(b, m - i), gen.latent_dim, generator=g, device=device)
                with autocast(device):
                    pixels = ((gen(z).float() + 1) * 127.5).round().clamp(0, 255)
                    logits = target(((pixels / 255 - mu) / sd).contiguous(memory_format=memory_format(device)))
                flagged += (torch.log_softmax(logits.double(), 1).max(1).values >= -0.1).sum()
        flagged.item()

    def ours():
        stream(pipe, fitted, samples=m, batch_size=b, generator=torch.Generator(device=device).manual_seed(0))

    r = compare(bare, ours, m, device, args.repeats, "fakes/s")
    r["seconds_per_1e6"] = 1e6 / r["overconf"]
    return r
@bench("fast_cifar")
def bench_fast_cifar(args, device) -> dict:
    """fast_cifar reference models (overconf.models.fast_cifar, its preset recipe, trained one after
    another with train_classifier as the reference manager does): seconds per model, models per hour,
    test accuracy and the minutes 256 models would take. On CIFAR-10 (50k / 10k) from ``--cifar-root``
    when that torchvision root holds it, else on synthetic data (accuracy then only shows learning).
    Goal (H100-class GPU, CIFAR-10): 256 models at >= 93% test accuracy in under 20 minutes. Absolute:
    there is no bare loop to compare with. On a CPU: narrow widths, 1 epoch, a small synthetic set."""
    from overconf.config.presets import recipe_preset
    from overconf.data.datasets import load_dataset
    from overconf.core.errors import OverconfError
    from overconf.core.seeding import isolated_rng

    cuda = device.type == "cuda"
    data, x = "synthetic", None
    if args.cifar_root:
        try:
            ds = load_dataset("cifar10", args.cifar_root)
            x, y, xt, yt = ds.normalize(ds.train_x), ds.train_y, ds.normalize(ds.test_x), ds.test_y
            data = "cifar10"
        except OverconfError as e:
            print(f"fast_cifar: CIFAR-10 not used ({e}); synthetic data instead")
    if x is None:
        g = torch.Generator().manual_seed(0)
        n = args.fc_n or (50000 if cuda else 1024)
        x, xt = torch.randn(n, 3, 32, 32, generator=g), torch.randn(max(n // 5, 256), 3, 32, 32, generator=g)
        y, yt = ((v[:, 0].mean((1, 2)) > 0).long() * 2 + (v[:, 2].mean((1, 2)) > 0).long() for v in (x, xt))
    recipe = Recipe(**{**recipe_preset("fast_cifar"), **({} if cuda else {"epochs": 1, "batch_size": 128})})
    params = {} if cuda else {"widths": [16, 32, 32]}

    def build(j):
        with isolated_rng(j):
            return build_model("fast_cifar", in_channels=3, num_classes=10, image_size=32, **params)

    train_classifier(build(0), x[:4096], y[:4096], dataclasses.replace(recipe, epochs=1), seed=0,
                     device=device, progress=False)  # warm-up (cuDNN autotuning)
    seconds, accs = [], []
    for j in range(args.fc_models or (3 if cuda else 1)):
        m = build(j)
        seconds.append(timed(lambda: train_classifier(m, x, y, recipe, seed=j, device=device, progress=False), device))
        logits, _ = compute_outputs(m, xt, device, batch_size=2048)
        accs.append(float((logits.argmax(1) == yt).float().mean()))
    per = sorted(seconds)[len(seconds) // 2]
    return {"data": data, "n_train": len(x), "epochs": recipe.epochs, "models": len(seconds),
            "seconds_per_model": per, "models_per_hour": 3600 / per, "minutes_for_256": 256 * per / 60,
            "test_accuracy": sum(accs) / len(accs), "test_accuracies": accs, "unit": "models/h"}


def reference_models(args, device):
    """K SalemCNNs (3x32x32 inputs, 10 classes) on a balanced keep matrix over ``ref_n`` images."""
    from overconf.reference import balanced_keep
    from overconf.core.seeding import isolated_rng

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.ref_n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.ref_n,), generator=g)
    keep = balanced_keep(args.ref_n, args.ref_models, g)

    def build():
        models = []
        for j in range(args.ref_models):
            with isolated_rng(j):
                models.append(build_model("salem_cnn", in_channels=3, num_classes=10, image_size=32))
        return models

    return x, y, keep, build


@bench("reference_batched")
def bench_reference_batched(args, device) -> dict:
    """Reference-model training, models x images / s: K SalemCNNs trained at once
    (overconf.training.batched: torch.func stacked parameters under vmap, one Adam) vs the same
    K trained one after another with train_classifier ("bare"); same device, data, recipe
    (batch 64, Adam), seeds and keep matrix."""
    from overconf.training.batched import train_batched

    x, y, keep, build = reference_models(args, device)
    recipe = Recipe(epochs=1, batch_size=args.ref_batch, lr=1e-3)
    seeds = list(range(args.ref_models))

    def sequential():
        for j, model in enumerate(build()):
            train_classifier(model, x[keep[:, j]], y[keep[:, j]], recipe, seed=j, device=device, progress=False)

    def batched():
        train_batched(build(), x, y, keep, recipe, seeds=seeds, dropout_seed=0, device=device, progress=False)

    return compare(sequential, batched, args.ref_models * (args.ref_n // 2), device, args.repeats,
                   "models x images/s")


@bench("reference_outputs")
def bench_reference_outputs(args, device) -> dict:
    """Reference-model scoring, models x images / s: stacked_logits (vmap over K models, eval
    mode) vs compute_outputs model by model ("bare")."""
    from overconf.reference.logits import stacked_logits

    x, _, _, build = reference_models(args, device)
    models = [m.to(device) for m in build()]
    sds = [m.state_dict() for m in models]

    def sequential():
        for m in models:
            compute_outputs(m, x, device, batch_size=args.batch)

    def batched():
        stacked_logits(models[0], sds, x, device, batch_size=args.batch * 8, vectorize=True)

    return compare(sequential, batched, args.ref_models * args.ref_n, device, args.repeats, "models x images/s")


@bench("dp_sgd")
def bench_dp_sgd(args, device) -> dict:
    """DP-SGD training images/s against non-private training of the same model (its GroupNorm
    version when it has BatchNorm, for both), same data and recipe: train_classifier with
    DPSGDHooks (sigma 1, C 1, Poisson batches) vs without ("bare" = non-private; ratio = the
    slowdown of DP)."""
    from overconf.defenses.dp_sgd import DPSGDHooks

    x, y = synthetic(args, device)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch, lr=1e-3, dropout=0.0)
    hooks = DPSGDHooks(1.0, 1.0, replace_batchnorm=True)

    def plain():
        train_classifier(hooks.prepare_model(model_for(args, device)), x, y, recipe, seed=0, device=device,
                         progress=False)

    def private():
        train_classifier(hooks.prepare_model(model_for(args, device)), x, y, recipe, seed=0, device=device,
                         progress=False, hooks=hooks)

    return compare(plain, private, args.n * args.epochs, device, args.repeats, "images/s")


@bench("dp_sgd_batched")
def bench_dp_sgd_batched(args, device) -> dict:
    """Reference models under DP-SGD, models x images / s: K SalemCNNs trained at once with
    batched DP-SGD (train_batched + DPSGDHooks: vmap over models and samples, padded Poisson
    batches) vs the same K trained one after another with DP-SGD ("bare")."""
    from overconf.defenses.dp_sgd import DPSGDHooks
    from overconf.training.batched import train_batched

    x, y, keep, build = reference_models(args, device)
    recipe = Recipe(epochs=1, batch_size=args.ref_batch, lr=1e-3, dropout=0.0)
    seeds = list(range(args.ref_models))

    def sequential():
        for j, model in enumerate(build()):
            train_classifier(model, x[keep[:, j]], y[keep[:, j]], recipe, seed=j, device=device, progress=False,
                             hooks=DPSGDHooks(1.0, 1.0))

    def batched():
        train_batched(build(), x, y, keep, recipe, seeds=seeds, dropout_seed=0, device=device, progress=False,
                      hooks=DPSGDHooks(1.0, 1.0))

    return compare(sequential, batched, args.ref_models * (args.ref_n // 2), device, args.repeats,
                   "models x images/s")


@bench("memguard")
def bench_memguard(args, device) -> dict:
    """MemGuard release, queries/s: the batched release (phase I on all queries at once, then
    phase II) of ``--queries`` outputs of a trained tiny SalemCNN, against releasing 64 of them
    one query at a time ("bare")."""
    from overconf.defenses.base import DefenseContext
    from overconf.defenses.memguard import MemGuard

    g = torch.Generator().manual_seed(0)
    n = max(args.queries, 512)
    x, y = torch.randn(2 * n, 3, 32, 32, generator=g), torch.randint(0, 10, (2 * n,), generator=g)
    model = build_model("salem_cnn", in_channels=3, num_classes=10, image_size=32)
    train_classifier(model, x[:n], y[:n], Recipe(epochs=args.epochs, batch_size=64, lr=1e-3), seed=0,
                     device=device, progress=False)
    log_probs = torch.log_softmax(compute_outputs(model.eval(), x, device, batch_size=512)[0].double(), 1).cpu()
    mg = MemGuard(budget=0.5).fit(DefenseContext(log_probs[:256], y[:256], log_probs[n: n + 256],
                                                 y[n: n + 256], 0))
    queries = log_probs[n: n + args.queries]
    one_by_one = queries[:64]
    t_batched = min(timed(lambda: mg.release(queries), device) for _ in range(args.repeats))
    t_single = min(timed(lambda: [mg.release(q[None]) for q in one_by_one], device) for _ in range(args.repeats))
    b, o = len(one_by_one) / t_single, len(queries) / t_batched
    return {"bare": b, "overconf": o, "ratio": o / b, "unit": "queries/s"}


CACHED_RERUN = """
import json, sys, time
t0 = time.perf_counter()
from overconf.runner.validation import load_config
from overconf.report import write_report
from overconf.runner.study import Study
cfg = load_config(sys.argv[1], sys.argv[2:])
study = Study(cfg)
t1 = time.perf_counter()
result = study.run(report=False)
t2 = time.perf_counter()
write_report(result)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "study": t2 - t1, "report": t3 - t2, "misses": study.cache.misses}))
"""


@bench("cached_rerun")
def bench_cached_rerun(args, device) -> dict:
    """Wall time of a fully cached rerun of experiments/tiny.yaml in a fresh process (the cache
    is filled by a first run in a temporary folder; goal on 2 CPU cores: under 10 s), and the
    share of it spent writing the report. Absolute: there is no bare loop to compare with."""
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", CACHED_RERUN, str(root / "experiments" / "tiny.yaml"),
               f"cache_dir={tmp}/checkpoints", f"output_dir={tmp}/runs", f"device={device}", "progress=false"]
        cmd += [f"data.root={args.data_root}"] if args.data_root else []
        subprocess.run(cmd, env=env, check=True, capture_output=True)  # fills the cache
        walls, phases = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            walls.append(time.perf_counter() - t0)
            phases.append(json.loads(out.strip().splitlines()[-1]))
    best = min(range(len(walls)), key=walls.__getitem__)
    wall, phase = walls[best], phases[best]
    return {"seconds": wall, "report_seconds": phase["report"], "report_share": phase["report"] / wall,
            "cache_misses": phase["misses"], "unit": "s"}


def ray_reference_set(args):
    """K SalemCNNs (sequential, 1x28x28 uint8 inputs, 10 classes) on a balanced keep matrix over
    ``ray_n`` images: the reference models of a study, without a dataset."""
    from overconf.reference import balanced_keep
    from overconf.reference.manager import ReferenceSet

    g = torch.Generator().manual_seed(0)
    n, k = args.ray_n, args.ray_models
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ReferenceSet("salem_cnn", {}, Recipe(epochs=1, batch_size=64), images, labels, torch.zeros(n, dtype=torch.long),
                        torch.arange(n), balanced_keep(n, k, g), list(range(k)), torch.tensor([0.5]),
                        torch.tensor([0.25]), 10, "sequential", 32, images[:1].float(), labels[:1])


def ray_runtime(workers: int):
    """A local Ray runtime with ``workers`` CPUs (one task per CPU), started once."""
    from overconf.runner.executor.ray_tasks import import_ray

    ray = import_ray()
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return ray


@bench("ray_reference")
def bench_ray_reference(args, device) -> dict:
    """K reference models (SalemCNN, sequential, 1 epoch), models / s: as Ray tasks
    (overconf.runner.executor, shared storage) on a local runtime with ``ray_workers`` workers of 1 CPU
    and 1 torch thread each, vs the local executor (ReferenceSet.state_dicts in this process, with
    this process's threads; "bare"). A fresh empty cache every time."""
    import tempfile
    from types import SimpleNamespace

    from overconf.core.cache import Cache
    from overconf.config.executor import RayConfig
    from overconf.runner.executor.items import ReferenceItem
    from overconf.runner.executor.ray_tasks import RayExecutor

    ray_runtime(args.ray_workers)
    refs = ray_reference_set(args)
    items = [ReferenceItem(f"reference model {k}", refs=refs, ks=[k]) for k in range(args.ray_models)]

    def local():
        with tempfile.TemporaryDirectory() as tmp:
            refs.state_dicts(list(range(args.ray_models)), Cache(tmp), device)

    def on_ray():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SimpleNamespace(ray=RayConfig(threads=1), progress=False)
            ex = RayExecutor(cfg, Cache(tmp), device)
            ex.submit(items)
            ex.wait()

    return compare(local, on_ray, args.ray_models, device, args.repeats, "models/s")


@bench("ray_overhead")
def bench_ray_overhead(args, device) -> dict:
    """Scheduling overhead of a Ray task: wall time per empty task (``ray_tasks`` of them at once,
    workers started) on the local runtime of ``ray_reference``."""
    from overconf.runner.executor.ray_tasks import timed_empty_tasks

    ray_runtime(args.ray_workers)
    return {"ms_per_task": 1000 * min(timed_empty_tasks(args.ray_tasks) for _ in range(args.repeats)),
            "tasks": args.ray_tasks, "workers": args.ray_workers, "unit": "ms/task"}


def compare(bare: Callable, ours: Callable, work: int, device, repeats: int, unit: str) -> dict:
    """Warm both up once, then time them alternately; report the best of ``repeats`` each."""
    bare()
    ours()
    t_bare, t_ours = [], []
    for _ in range(repeats):
        t_bare.append(timed(bare, device))
        t_ours.append(timed(ours, device))
    b, o = work / min(t_bare), work / min(t_ours)
    return {"bare": b, "overconf": o, "ratio": o / b, "unit": unit}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    p.add_argument("--arch", help="architecture (default: resnet18 on CUDA, small_resnet on CPU)")
    p.add_argument("--batch", type=int, help="batch size (default: 512 on CUDA, 128 on CPU)")
    p.add_argument("--n", type=int, help="images per epoch (default: 25600 on CUDA, 2048 on CPU)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--ref-models", type=int, default=32, help="reference benchmarks: models K (default 32)")
    p.add_argument("--ref-n", type=int, help="reference benchmarks: images in the keep matrix, each model "
                                             "trains on half (default: 25600 on CUDA, 256 on CPU)")
    p.add_argument("--ref-batch", type=int, default=64, help="reference benchmarks: batch per model (64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--queries", type=int, default=4096, help="memguard: queries released (default 4096)")
    p.add_argument("--stream-samples", type=int,
                   help="fakes per gan_stream run (default: 1000000 on CUDA, 4096 on CPU)")
    p.add_argument("--stream-batch", type=int, help="gan_stream batch (default: 8192 on CUDA, 512 on CPU)")
    p.add_argument("--fc-models", type=int, help="fast_cifar: models timed (default: 3 on CUDA, 1 on CPU)")
    p.add_argument("--fc-n", type=int, help="fast_cifar: synthetic training images (default: 50000 on CUDA, 1024 on CPU)")
    p.add_argument("--cifar-root", help="fast_cifar: a torchvision root holding CIFAR-10 (else synthetic data)")
    p.add_argument("--data-root", help="cached_rerun: data.root for experiments/tiny.yaml (Fashion-MNIST's 4 .gz files)")
    p.add_argument("--ray-models", type=int, default=8, help="ray_reference: models K (default 8)")
    p.add_argument("--ray-n", type=int, default=4096, help="ray_reference: images in the keep matrix (4096)")
    p.add_argument("--ray-workers", type=int, default=2, help="ray benchmarks: CPUs of the local runtime (2)")
    p.add_argument("--ray-tasks", type=int, default=200, help="ray_overhead: empty tasks per measurement (200)")
    p.add_argument("--json", help="also write the results to this file")
    args, _ = p.parse_known_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.arch = args.arch or ("resnet18" if cuda else "small_resnet")
    args.batch = args.batch or (512 if cuda else 128)
    args.n = args.n or (25600 if cuda else 2048)
    args.stream_samples = args.stream_samples or (1_000_000 if cuda else 4096)
    args.stream_batch = args.stream_batch or (8192 if cuda else 512)
    args.ref_n = args.ref_n or (25600 if cuda else 256)
    if cuda:
        torch.backends.cudnn.benchmark = True
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark '{unknown[0]}'; choose from {', '.join(BENCHES)}")
    results = {"machine": machine(device), "device": str(device), "arch": args.arch, "batch": args.batch,
               "n": args.n, "ref_models": args.ref_models, "ref_n": args.ref_n, "ref_batch": args.ref_batch,
               "benchmarks": {}}
    print(f"machine: {results['machine']}")
    print(f"{'benchmark':24s} {'bare':>14s} {'overconf':>14s} {'ratio':>7s}")
    for name in names:
        r = BENCHES[name](args, device)
        results["benchmarks"][name] = r
        if "models_per_hour" in r:
            print(f"{name:24s} {r['models_per_hour']:.0f} models/h ({r['seconds_per_model']:.2f} s per model, "
                  f"{r['minutes_for_256']:.1f} min for 256), test accuracy {r['test_accuracy']:.4f} on {r['data']}")
            continue
        if "seconds" in r:
            print(f"{name:24s} {r['seconds']:.2f} s wall (best of {args.repeats}), "
                  f"{100 * r['report_share']:.0f}% in the report, {r['cache_misses']} cache misses")
            continue
        if "ms_per_task" in r:
            print(f"{name:24s} {r['ms_per_task']:.2f} ms per empty task ({r['tasks']} tasks, {r['workers']} workers)")
            continue
        print(f"{name:24s} {r['bare']:14.1f} {r['overconf']:14.1f} {r['ratio']:7.3f}  {r['unit']}"
              + (f"  ({r['seconds_per_1e6']:.1f} s per 1e6 fakes)" if "seconds_per_1e6" in r else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
