"""The CUDA path (``pytest -m cuda``; skipped without a GPU; scripts/gpu_check.sh runs them): bf16
autocast + channels_last training and scoring with float32 logits, batched reference models,
GAN streaming, LLLA, the white-box probes on CUDA tensors, fast_cifar, RNG isolation on CUDA.
Each test is small (seconds on one GPU) and checks the GPU result against the CPU's or a formula.

``OVERCONF_CUDA_TESTS_DEVICE=cpu`` runs the same tests on the CPU with the bf16 autocast policy
(``overconf.core.device.AUTOCAST_DTYPES``): how ``scripts/gpu_check.sh --cpu`` checks them without a GPU."""
import math
import os

import pytest
import torch

DEV = torch.device(os.environ.get("OVERCONF_CUDA_TESTS_DEVICE", "cuda"))
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEV.type == "cuda" and not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (pytest -m cuda)")]

from overconf.config import Recipe  # noqa: E402
from overconf.core import device as dev  # noqa: E402
from overconf.core.device import memory_format, precision  # noqa: E402
from overconf.models import build_model  # noqa: E402
from overconf.signals.outputs import compute_outputs  # noqa: E402
from overconf.core.seeding import isolated_rng  # noqa: E402
from overconf.training import train_classifier  # noqa: E402
from overconf.training.step import get_global_rng, set_global_rng  # noqa: E402

CUDA = DEV
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def bf16_everywhere(monkeypatch):
    """On the CPU stand-in, the bf16 autocast policy of CUDA."""
    if DEV.type == "cpu":
        monkeypatch.setitem(dev.AUTOCAST_DTYPES, "cpu", torch.bfloat16)


def task(n=512, c=3, size=32, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, size, size, generator=g)
    y = ((x[:, 0].mean((1, 2)) > 0).long() * 2 + (x[:, -1].mean((1, 2)) > 0).long()) % classes  # flip-invariant
    return x, y


def model(arch="small_resnet", c=3, size=32, classes=10, seed=0, **params):
    with isolated_rng(seed):
        return build_model(arch, in_channels=c, num_classes=classes, image_size=size, **params)


def test_cuda_precision_is_bf16_and_keys_say_so():
    assert precision(CUDA) == "bfloat16"
    assert memory_format(CUDA) == (torch.channels_last if DEV.type == "cuda" else torch.contiguous_format)


@pytest.mark.parametrize("arch", ["small_resnet", "salem_cnn"])
def test_bf16_channels_last_training_and_float32_scoring(arch):
    x, y = task()
    m = model(arch)
    hist = train_classifier(m, x, y, Recipe(epochs=3, batch_size=128, lr=3e-3), seed=0, device=CUDA, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    conv = next(p for p in m.parameters() if p.dim() == 4)
    assert conv.device.type == DEV.type and conv.is_contiguous(memory_format=memory_format(DEV))
    logits, feats = compute_outputs(m, x, CUDA, batch_size=256)
    assert logits.dtype == torch.float32 and feats.dtype == torch.float32 and logits.device == CPU
    assert bool((logits != logits.bfloat16().float()).any()), "logits look like bf16 values"
    ref, _ = compute_outputs(m.to(CPU, memory_format=torch.contiguous_format), x, CPU)  # float32 on the CPU
    agree = (logits.argmax(1) == ref.argmax(1)).float().mean()
    assert agree > 0.95 and (logits - ref).abs().mean() < 0.05 * ref.abs().mean() + 0.02  # bf16 body: close


def test_seeded_cuda_training_is_reproducible_and_leaves_the_rng_alone():
    x, y = task(256)
    set_global_rng(get_global_rng(DEV), DEV)
    before = get_global_rng(DEV).clone()
    torch.backends.cudnn.deterministic, bench = True, torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    runs = []
    for _ in range(2):
        m = model("salem_cnn", dropout=0.3)
        train_classifier(m, x, y, Recipe(epochs=2, batch_size=64, dropout=0.3), seed=5, device=CUDA, progress=False)
        runs.append(m.state_dict())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, bench
    assert torch.equal(get_global_rng(DEV), before), "training moved the caller's CUDA RNG"
    # equal up to float noise (other dropout masks or batches would differ by far more)
    assert all(torch.allclose(runs[0][k].float(), runs[1][k].float(), atol=1e-3) for k in runs[0])
    with isolated_rng(7, CUDA):
        a = torch.rand(3, device=CUDA)
    with isolated_rng(7, CUDA):
        b = torch.rand(3, device=CUDA)
    assert torch.equal(a, b) and torch.equal(get_global_rng(DEV), before)


def test_batched_reference_models_match_sequential_ones_on_cuda():
    from overconf.reference import balanced_keep
    from overconf.reference.logits import stacked_logits
    from overconf.training.batched import train_batched

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    keep = balanced_keep(256, 4, g)
    recipe = Recipe(epochs=2, batch_size=32, lr=1e-3)
    models = [model("salem_cnn", seed=j) for j in range(4)]
    sds, hist = train_batched(models, x, y, keep, recipe, seeds=list(range(4)), dropout_seed=0, device=CUDA,
                              progress=False)
    assert all(v.device == CPU for v in sds[0].values())
    seq = model("salem_cnn", seed=1)
    train_classifier(seq, x[keep[:, 1]], y[keep[:, 1]], recipe, seed=1, device=CUDA, progress=False)
    seq_logits, _ = compute_outputs(seq, x, CUDA)
    stacked = stacked_logits(models[0], sds, x, CUDA, batch_size=512)
    assert stacked.shape == (4, 256, 10) and stacked.dtype == torch.float32
    assert (stacked[1].argmax(1) == seq_logits.argmax(1)).float().mean() > 0.9  # bf16: close, not equal
    loop = stacked_logits(models[0], sds, x, CUDA, batch_size=512, vectorize=False)
    assert torch.allclose(stacked, loop, atol=0.1)


def test_gan_streaming_counts_on_the_device():
    from overconf.attacks import Fitted
    from overconf.calibrations import CALIBRATIONS
    from overconf.gan.models import dcgan
    from overconf.gan.streaming import FakePipeline, stream

    with isolated_rng(0):
        gen, _ = dcgan(channels=3, image_size=32, width=16, latent_dim=32)
    target = model("salem_cnn").to(CUDA).eval()
    mean, std = torch.full((3, 1, 1), 0.5), torch.full((3, 1, 1), 0.25)
    pipe = FakePipeline(gen.to(CUDA), target, CALIBRATIONS["none"](), mean, std, CUDA)
    fitted = {"all": Fitted(lambda s: s.log_probs.max(1).values, -math.inf),
              "none": Fitted(lambda s: s.log_probs.max(1).values, math.inf),
              "some": Fitted(lambda s: s.log_probs.max(1).values, math.log(0.12))}
    curve = stream(pipe, fitted, samples=5000, batch_size=1024, generator=torch.Generator(device=CUDA).manual_seed(0))
    assert curve.samples.tolist()[-1] == 5000 and curve.flagged["all"][-1] == 5000 and curve.flagged["none"][-1] == 0
    again = stream(pipe, fitted, samples=5000, batch_size=1024, generator=torch.Generator(device=CUDA).manual_seed(0))
    assert again.flagged["some"].tolist() == curve.flagged["some"].tolist()  # seeded on the device
    x = pipe.inputs(pipe.pixels(torch.randn(8, 32, device=CUDA), None))
    logits, _ = pipe.logits_features(x)
    assert logits.dtype == torch.float32 and logits.device.type == DEV.type


def test_llla_on_outputs_of_a_cuda_model():
    pytest.importorskip("laplace", reason="laplace-torch is not installed (device image)")
    from overconf.calibrations.base import CalibrationContext
    from overconf.calibrations.llla import LastLayerLaplace
    from overconf.signals.outputs import Outputs

    x, y = task(600)
    m = model("salem_cnn")
    train_classifier(m, x[:400], y[:400], Recipe(epochs=3, batch_size=64, lr=3e-3), seed=0, device=CUDA, progress=False)
    outs = [Outputs(*compute_outputs(m, xs, CUDA), ys) for xs, ys in ((x[:400], y[:400]), (x[400:], y[400:]))]
    head = torch.nn.Linear(m.head.in_features, 10)
    head.load_state_dict({k: v.cpu() for k, v in m.head.state_dict().items()})
    la = LastLayerLaplace(method="marglik", link="probit").fit(CalibrationContext(head, outs[0], outs[1], 0))
    lp = la.log_probs(outs[1])
    assert torch.isfinite(lp).all() and torch.allclose(lp.exp().sum(1), torch.ones(len(lp), dtype=lp.dtype))
    # LLLA is less confident than MAP
    assert lp.max(1).values.mean() <= torch.log_softmax(outs[1].logits.double(), 1).max(1).values.mean() + 1e-9


def test_white_box_probes_keep_cuda_tensors_on_the_device():
    from overconf.signals.whitebox import local_variation, minimal_adversarial_distance, pgd_flip

    x, y = task(64)
    m = model("salem_cnn").to(CUDA).eval()
    xc = x.to(CUDA)
    cls = m(xc).argmax(1)
    found = pgd_flip(m, xc, cls, torch.full((64,), 5.0, device=CUDA), 5, "l2")
    assert found.device == xc.device and found.shape == (64,)
    d_gpu = minimal_adversarial_distance(m, x, CUDA, search_steps=4, pgd_steps=4)
    d_cpu = minimal_adversarial_distance(m.to(CPU), x, CPU, search_steps=4, pgd_steps=4)
    assert d_gpu.dtype == torch.float64 and d_gpu.device == CPU  # cached on the CPU by design
    assert (d_gpu - d_cpu).abs().median() <= 10.0 / 2 ** 4 + 1e-3  # within one bisection step, mostly
    assert torch.equal(d_gpu == 0, d_cpu == 0)  # the same misclassified inputs
    lv = local_variation(m.to(CUDA), x, y, CUDA)
    assert torch.isfinite(lv).all() and lv.shape == (64,)


def test_fast_cifar_trains_on_cuda_with_the_preset():
    from overconf.config.presets import RECIPE_PRESETS

    x, y = task(2048)
    m = model("fast_cifar", **({} if DEV.type == "cuda" else {"widths": [16, 32, 32]}))  # CPU stand-in: narrow
    recipe = Recipe(**{**RECIPE_PRESETS["fast_cifar"], "epochs": 4, "batch_size": 256})
    hist = train_classifier(m, x, y, recipe, seed=0, device=CUDA, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"] and all(math.isfinite(h["loss"]) for h in hist)
    logits, _ = compute_outputs(m, x, CUDA)
    assert logits.dtype == torch.float32 and (logits.argmax(1) == y).float().mean() > 0.4  # 4 classes
