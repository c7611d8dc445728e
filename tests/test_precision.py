"""Precision: logits that feed attacks stay float32 under bf16 autocast (the head runs in float32
outside autocast), and cache keys of trained models, generators and outputs record a precision
other than float32 (float32 keys are unchanged). The bf16 path runs on the CPU here by adding
``"cpu": torch.bfloat16`` to overconf.core.device.AUTOCAST_DTYPES (the one place the policy lives)."""
import dataclasses

import pytest
import torch

from overconf.core import device as dev
from overconf.core.cache import Cache
from overconf.config import Recipe
from overconf.config.gan import GanRecipe
from overconf.models import build_model
from overconf.signals.outputs import cached_outputs, compute_outputs, outputs_key
from overconf.training import train_classifier
from overconf.training.jobs import load_or_train
from tests.test_cache_keys import CLASSIFIER_KEY, GAN_RECIPE, GENERATOR_KEY, gan_job, job

CPU = torch.device("cpu")


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setitem(dev.AUTOCAST_DTYPES, "cpu", torch.bfloat16)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("salem_cnn", in_channels=1, num_classes=5, image_size=12, width=4, hidden=16)


def test_precision_of_a_device():
    assert dev.precision(CPU) == "float32"
    assert dev.precision(torch.device("cuda")) == "bfloat16"  # constructing a cuda device needs no GPU
    assert isinstance(dev.autocast(CPU), type(dev.autocast(torch.device("meta"))))  # both no-ops


def test_bf16_policy_on_cpu_autocasts_and_says_so(bf16_cpu):
    assert dev.precision(CPU) == "bfloat16"
    with dev.autocast(CPU):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16


def test_logits_are_float32_from_a_float32_head_under_autocast(bf16_cpu):
    model = tiny_model().eval()
    x = torch.randn(64, 1, 12, 12)
    logits, feats = compute_outputs(model, x, CPU, batch_size=16)
    assert logits.dtype == torch.float32 and feats.dtype == torch.float32
    with torch.no_grad(), dev.autocast(CPU):
        f = model.features(x)
        assert f.dtype == torch.bfloat16  # the body did run in bf16
        bf16_head = model.head(f)
    assert bf16_head.dtype == torch.bfloat16
    # exactly the float32 head on the bf16 features (computed here without autocast)
    with torch.no_grad():
        expected = model.head(f.float())
    assert torch.equal(logits, expected)
    assert torch.equal(feats, f.float())
    # and not bf16 logits cast up: those hold at most 8 significant bits
    assert not torch.equal(logits, bf16_head.float())
    assert bool((logits != logits.bfloat16().float()).any())
    # forward() (training, inference, reference and GAN scoring) does the same
    with torch.no_grad(), dev.autocast(CPU):
        z = model(x)
    assert z.dtype == torch.float32 and torch.equal(z, expected)


def test_training_under_bf16_autocast_keeps_float32_logits_and_learns(bf16_cpu):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 12, 12, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    model = tiny_model()
    hist = train_classifier(model, x, y, Recipe(epochs=4, batch_size=32, lr=1e-2), seed=0, device=CPU,
                            progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a bf16 model
    logits, _ = compute_outputs(model, x, CPU)
    assert logits.dtype == torch.float32


def test_float32_keys_are_unchanged_and_other_precisions_differ():
    assert job(Recipe(epochs=2, lr=0.01)).key == CLASSIFIER_KEY
    assert dataclasses.replace(job(Recipe(epochs=2, lr=0.01)), precision="float32").key == CLASSIFIER_KEY
    assert dataclasses.replace(job(Recipe(epochs=2, lr=0.01)), precision="bfloat16").key != CLASSIFIER_KEY
    assert gan_job(GanRecipe(**GAN_RECIPE)).key == GENERATOR_KEY
    assert dataclasses.replace(gan_job(GanRecipe(**GAN_RECIPE)), precision="bfloat16").key != GENERATOR_KEY
    x, y = torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)
    assert outputs_key("m", x, y) == outputs_key("m", x, y, "float32")
    assert outputs_key("m", x, y, "bfloat16") != outputs_key("m", x, y)


def test_bf16_and_float32_models_and_outputs_never_share_a_cache_entry(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    j = dataclasses.replace(job(Recipe(epochs=2, lr=0.01)), name="tiny")  # the pinned job
    fp32 = load_or_train(j, cache, CPU, progress=False)
    assert fp32.key == CLASSIFIER_KEY and cache.misses == 1
    monkeypatch.setitem(dev.AUTOCAST_DTYPES, "cpu", torch.bfloat16)
    bf16 = load_or_train(j, cache, CPU, progress=False)
    assert cache.misses == 2, "a bf16 run must not load the float32 model"
    assert bf16.key != fp32.key and bf16.job.precision == "bfloat16"
    assert bf16.key == dataclasses.replace(j, precision="bfloat16").key
    x = j.inputs()
    bf = cached_outputs(cache, fp32.key, fp32.model, x, j.labels, CPU)  # bf16 outputs
    assert cache.misses == 3 and bf.logits.dtype == torch.float32
    monkeypatch.delitem(dev.AUTOCAST_DTYPES, "cpu")
    cached_outputs(cache, fp32.key, fp32.model, x, j.labels, CPU)  # float32: not the bf16 entry
    assert cache.misses == 4
    cached_outputs(cache, fp32.key, fp32.model, x, j.labels, CPU)  # float32 again: found
    assert cache.misses == 4
    assert len(list((tmp_path / "models").glob("*.pt"))) == 2
    assert len(list((tmp_path / "outputs").glob("*.pt"))) == 2


def test_reference_model_keys_record_the_precision():
    from tests.test_reference import reference_set

    for mode in ("sequential", "batched"):
        rs = reference_set(mode, k=2)
        assert rs.precision == "float32"
        other = dataclasses.replace(rs, precision="bfloat16")
        assert set(other.model_keys).isdisjoint(rs.model_keys) and other.key != rs.key
        assert other.job(0).precision == "bfloat16"
