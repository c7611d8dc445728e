#!/usr/bin/env python
"""The steps of scripts/gpu_check.sh (run that): cuda tests, a tiny study, the benchmarks, each in
its own process with a timeout inside one time budget; their figures merged into one JSON file, the
goals checked, a Markdown summary written next to it and printed. ``--cpu``: the same steps at tiny
sizes on the CPU (the tests through their CPU stand-in, OVERCONF_CUDA_TESTS_DEVICE=cpu)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_ORDER = ["train", "score", "reference_batched", "gan_stream", "fast_cifar", "reference_outputs", "cached_rerun"]
EXTRA = ["dp_sgd", "dp_sgd_batched", "memguard"]
"""run after the others while the budget lasts; informational (DP-SGD needs opacus, which a device
image may lack): their failure does not fail the check"""
CPU_SIZES = ["--n", "256", "--batch", "64", "--epochs", "1", "--ref-models", "4", "--ref-n", "128",
             "--stream-samples", "2048", "--stream-batch", "512", "--fc-models", "1", "--fc-n", "512"]
CAPS = {"tests": 150, "study": 90, "train": 60, "score": 45, "reference_batched": 90, "gan_stream": 150,
        "fast_cifar": 150, "reference_outputs": 45, "cached_rerun": 90, "dp_sgd": 60, "dp_sgd_batched": 90,
        "memguard": 45}
"""seconds per step at most (the budget may cut a step shorter)"""
GOALS = [  # (benchmark, figure, comparison, goal, what)
    ("train", "ratio", ">=", 0.9, "ResNet-18 training, batch 512 bf16, vs the bare loop"),
    ("score", "ratio", ">=", 0.9, "ResNet-18 scoring, batch 512 bf16, vs bare forward passes"),
    ("reference_batched", "ratio", ">=", 4.0, "K = 32 SalemCNNs batched vs sequential"),
    ("gan_stream", "seconds_per_1e6", "<", 30.0, "seconds per 1e6 GAN fakes generated and scored"),
    ("fast_cifar", "minutes_for_256", "<", 20.0, "minutes for 256 fast_cifar reference models"),
    ("fast_cifar", "test_accuracy", ">=", 0.93, "fast_cifar CIFAR-10 test accuracy"),
]


def run(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(1, timeout))
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 2), "tail": out[-3000:]}


def machine(py: str) -> dict:
    probe = ("import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
             "'cuda': c, 'gpu': torch.cuda.get_device_name(0) if c else None, 'cuda_version': torch.version.cuda}))")
    info = {"python": py, "platform": platform.platform()}
    try:
        info |= json.loads(subprocess.run([py, "-c", probe], capture_output=True, text=True, timeout=120).stdout)
    except (json.JSONDecodeError, subprocess.TimeoutExpired) as e:
        info["probe_error"] = str(e)
    missing = []
    for mod in ("laplace", "opacus", "pytorch_fid", "filelock", "torchmetrics", "tensorboard", "sklearn", "yaml"):
        r = subprocess.run([py, "-c", f"import {mod}"], capture_output=True, timeout=120)
        if r.returncode:
            missing.append(mod)
    info["missing_packages"] = missing
    return info


def test_counts(junit: Path, out: str) -> dict:
    counts = {}
    if junit.is_file():
        text = junit.read_text()
        m = re.search(r'<testsuite[^>]*', text)
        if m:
            for k in ("tests", "failures", "errors", "skipped"):
                v = re.search(rf'\b{k}="(\d+)"', m.group(0))
                counts[k] = int(v.group(1)) if v else 0
            counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        counts["failed_tests"] = re.findall(r'<testcase[^>]*name="([^"]+)"[^>]*>\s*<(?:failure|error)', text)
    counts["summary"] = (out.strip().splitlines() or [""])[-1]
    return counts


def check_goals(benches: dict, cpu: bool) -> list[dict]:
    out = []
    for bench, figure, op, goal, what in GOALS:
        r = benches.get(bench, {}).get("result", {})
        value = r.get(figure)
        row = {"benchmark": bench, "figure": figure, "goal": f"{op} {goal}", "what": what, "value": value}
        if value is None or cpu:
            row["met"] = None
        elif bench == "fast_cifar" and figure == "test_accuracy" and r.get("data") != "cifar10":
            row["met"], row["note"] = None, "synthetic data (no CIFAR-10 root): accuracy not comparable"
        else:
            row["met"] = value >= goal if op == ">=" else value < goal
        if cpu:
            row["note"] = "CPU dry run at tiny sizes: not judged"
        out.append(row)
    return out


def summary(res: dict) -> str:
    m = res["machine"]
    lines = [f"# gpu_check ({'CPU dry run' if res['cpu'] else 'GPU'})", "",
             f"machine: {m.get('gpu') or 'no GPU'}, torch {m.get('torch')}, CUDA {m.get('cuda_version')}, "
             f"{m.get('platform')}; missing optional packages: {', '.join(m['missing_packages']) or 'none'}",
             f"elapsed: {res['elapsed_s']:.0f} s (budget {res['budget_s']} s)", "",
             f"tests (pytest -m cuda): rc {res['tests']['rc']}, {res['tests']['seconds']} s: "
             f"{res['tests'].get('counts', {}).get('summary', '')}"]
    failed = res["tests"].get("counts", {}).get("failed_tests")
    if failed:
        lines.append(f"  failed: {', '.join(failed)}")
    st = res["study"]
    lines.append(f"tiny study (experiments/tiny.yaml on {res['device']}): rc {st['rc']}, {st['seconds']} s")
    lines += ["", "| benchmark | rc | s | figures |", "|---|---|---|---|"]
    for name, b in res["bench"].items():
        r = b.get("result", {})
        figs = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                         if k not in ("test_accuracies",))
        lines.append(f"| {name}{' (informational)' if name in EXTRA else ''} | {b['rc']} | {b['seconds']} | {figs} |")
    lines += ["", "| goal | value | met |", "|---|---|---|"]
    for g in res["goals"]:
        v = g["value"]
        lines.append(f"| {g['what']} {g['goal']} | {'-' if v is None else f'{v:.4g}'} | "
                     f"{'-' if g['met'] is None else ('yes' if g['met'] else 'NO')}{' (' + g['note'] + ')' if 'note' in g else ''} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", nargs="?", help="JSON file (default: $OUT/gpu_check.json, else ./gpu_check.json)")
    p.add_argument("--cpu", action="store_true", help="dry run: the same steps at tiny sizes on the CPU")
    p.add_argument("--data-root", help="folder with Fashion-MNIST's 4 .gz files (default: shared-data/fashion-mnist "
                                       "if present, else the Debian package)")
    p.add_argument("--cifar-root", help="torchvision root holding CIFAR-10 (default: shared-data/cifar10 if present)")
    p.add_argument("--budget", type=float, help="seconds for all steps together (default 450; --cpu: 1200, and "
                                                "each step's cap x 3, for a slow shared CPU)")
    args = p.parse_args(argv)
    out = Path(args.out or Path(os.environ.get("OUT", ".")) / "gpu_check.json")
    data_root = args.data_root or (str(ROOT / "shared-data/fashion-mnist")
                                   if (ROOT / "shared-data/fashion-mnist").is_dir() else None)
    cifar_root = args.cifar_root or (str(ROOT / "shared-data/cifar10") if (ROOT / "shared-data/cifar10").is_dir() else None)
    py, device = sys.executable, "cpu" if args.cpu else "cuda"
    args.budget = args.budget or (1200.0 if args.cpu else 450.0)
    t0 = time.perf_counter()

    def left(step: str) -> float:
        return min(CAPS[step] * (3 if args.cpu else 1), args.budget - (time.perf_counter() - t0))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if args.cpu:
        env["OVERCONF_CUDA_TESTS_DEVICE"] = "cpu"
    res = {"cpu": args.cpu, "device": device, "budget_s": args.budget, "data_root": data_root,
           "cifar_root": cifar_root, "machine": machine(py), "bench": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        junit = Path(tmp) / "junit.xml"
        r = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests/test_cuda.py",
                 f"--junitxml={junit}"], left("tests"), env)
        r["counts"] = test_counts(junit, r["tail"])
        res["tests"] = r
        print(f"tests: {r['counts'].get('summary')} ({r['seconds']} s)", flush=True)
        study = [py, "-m", "overconf.cli", "run", "experiments/tiny.yaml", "--set", f"device={device}",
                 "--set", f"cache_dir={tmp}/checkpoints", "--set", f"output_dir={tmp}/runs", "--set", "progress=false"]
        study += ["--set", f"data.root={data_root}"] if data_root else []
        res["study"] = run(study, left("study"), env)
        print(f"tiny study: rc {res['study']['rc']} ({res['study']['seconds']} s)", flush=True)
        for name in BENCH_ORDER + EXTRA:
            if left(name) < 5:
                res["bench"][name] = {"rc": "skipped: time budget", "seconds": 0}
                continue
            js = Path(tmp) / f"bench-{name}.json"
            cmd = [py, "scripts/bench.py", "--device", device, "--only", name, "--repeats", "1", "--json", str(js)]
            cmd += CPU_SIZES if args.cpu else []
            cmd += ["--data-root", data_root] if data_root else []
            cmd += ["--cifar-root", cifar_root] if cifar_root else []
            b = run(cmd, left(name), env)
            if js.is_file():
                d = json.loads(js.read_text())
                b["result"] = d["benchmarks"].get(name, {})
                res.setdefault("bench_machine", d.get("machine"))
            res["bench"][name] = b
            print(f"bench {name}: rc {b['rc']} ({b['seconds']} s) {json.dumps(b.get('result', {}))[:300]}", flush=True)
    res["elapsed_s"] = time.perf_counter() - t0
    res["goals"] = check_goals(res["bench"], args.cpu)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    text = summary(res)
    out.with_suffix(".md").write_text(text)
    print(text)
    print(f"figures: {out} (summary: {out.with_suffix('.md')})")
    ok = res["tests"]["rc"] == 0 and res["study"]["rc"] == 0 and all(
        b["rc"] == 0 for name, b in res["bench"].items() if name not in EXTRA)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
