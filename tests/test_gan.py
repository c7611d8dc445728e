"""GAN false positives: generators, sampling, FID, streaming, latent search, the fake sources in a
tiny study, and the `overconf sample` command. Tiny generators, few steps, small slices (CPU)."""
import copy
import json
import math

import numpy as np
import pytest
import torch

from overconf.attacks import Fitted
from overconf.core.cache import Cache
from overconf.calibrations import CALIBRATIONS
from overconf.runner.validation import config_from_dict
from overconf.core.errors import ConfigError
from overconf.config.gan import GanRecipe
from overconf.gan.models import GANS, dcgan
from overconf.gan.sampling import class_labels, latent, resolve_classes, sample
from overconf.gan.search import search_and_score
from overconf.gan.streaming import FakePipeline, clopper_pearson, stream
from overconf.gan.training import GanJob, load_or_train_generator
from overconf.models import build_model

CPU = torch.device("cpu")
TINY_GAN = {"params": {"width": 4, "latent_dim": 8}, "train_images": 256, "steps": 4, "batch_size": 16,
            "log_every": 2, "fid": {"epochs": 1, "train_images": 300}}


@pytest.fixture(scope="module")
def fmnist():
    from overconf.data import load_dataset

    return load_dataset("fashion_mnist")


def job(fmnist, steps=6, conditional=False, seed=0) -> GanJob:
    return GanJob("dcgan", {"width": 4, "latent_dim": 8}, conditional, GanRecipe(steps, 16, 2e-4, 0.5, 0.999), seed,
                  fmnist.train_x[:128], fmnist.train_y[:128], 10, name="test gan")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_dcgan_follows_the_dataset_shape(shape, num_classes):
    g, d = dcgan(channels=shape[0], image_size=shape[1], num_classes=num_classes, width=4, latent_dim=8)
    y = torch.arange(5) % 10 if num_classes else None
    x = g(torch.randn(5, 8), y)
    assert x.shape == (5, *shape) and float(x.detach().abs().max()) <= 1.0
    assert d(x, y).shape == (5,)
    assert GANS.names() == ["dcgan"]


def test_a_few_generator_steps_keep_losses_finite_and_change_the_samples(fmnist, tmp_path):
    j = job(fmnist)
    untrained, _ = j.build()
    trained = load_or_train_generator(j, Cache(tmp_path), CPU, progress=False, log_every=3,
                                      log_dir=tmp_path / "tb")
    assert [h["step"] for h in trained.history] == [3, 6]
    for h in trained.history:
        assert all(math.isfinite(h[k]) for k in ("loss_d", "loss_g", "d_real", "d_fake"))
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(untrained.eval()(z), trained.generator(z))
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))  # losses and sample grids logged
    again = load_or_train_generator(j, Cache(tmp_path), CPU, progress=False)  # cached by content
    assert again.key == trained.key and again.history == trained.history
    assert torch.equal(again.generator.body[0].weight, trained.generator.body[0].weight)
    assert job(fmnist, seed=1).key != j.key and job(fmnist, conditional=True).key != j.key


def test_killed_gan_training_resumes_where_it_stopped(fmnist, tmp_path, monkeypatch):
    full = load_or_train_generator(job(fmnist), Cache(tmp_path / "full"), CPU, progress=False, log_every=2)
    import overconf.gan.training as training

    real = training.train_gan

    def killed_at_step_four(*args, on_log, **kw):
        def hook(state):
            on_log(state)
            if state.step == 4:
                raise KeyboardInterrupt

        return real(*args, on_log=hook, **kw)

    cache = Cache(tmp_path / "killed")
    monkeypatch.setattr(training, "train_gan", killed_at_step_four)
    with pytest.raises(KeyboardInterrupt):
        load_or_train_generator(job(fmnist), cache, CPU, progress=False, log_every=2, checkpoint_every=0)
    assert cache.load("partial", job(fmnist).key)["step"] == 4
    monkeypatch.setattr(training, "train_gan", real)
    resumed = load_or_train_generator(job(fmnist), cache, CPU, progress=False, log_every=2)
    assert [h["step"] for h in resumed.history] == [2, 4, 6]
    for (k, v), w in zip(full.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-6), k
    assert cache.load("partial", job(fmnist).key) is None


def test_sampling_is_reproducible_from_the_seed_with_truncation_and_classes(fmnist):
    gen, _ = job(fmnist, conditional=True).build()
    gen.eval()

    def draw(seed, **kw):
        return sample(gen, 40, generator=torch.Generator().manual_seed(seed), device=CPU, **kw)

    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.uint8 and a[0].shape == (40, 1, 28, 28)
    classes = resolve_classes([0, "Sneaker"], fmnist.classes, True, "test")
    images, labels, z = draw(0, psi=0.5, classes=classes)
    assert labels.tolist() == [0, 7] * 20
    assert float(z.abs().max()) <= 0.5
    with pytest.raises(ConfigError, match="fake_conditional"):
        resolve_classes([0], fmnist.classes, False, "source fake")
    with pytest.raises(ConfigError, match="unknown class 'hat'"):
        resolve_classes(["hat"], fmnist.classes, True, "test")


def test_truncated_latents_follow_the_truncated_normal():
    z = latent(20000, 8, generator=torch.Generator().manual_seed(0), psi=1.0)
    assert float(z.abs().max()) <= 1.0
    from scipy.stats import truncnorm

    assert float(z.std()) == pytest.approx(truncnorm.std(-1, 1), abs=0.01)
    plain = latent(20000, 8, generator=torch.Generator().manual_seed(0))
    assert float(plain.std()) == pytest.approx(1.0, abs=0.02)
    assert class_labels(5, None, 3).tolist() == [0, 1, 2, 0, 1]


def test_fid_is_zero_against_itself_and_large_against_noise(fmnist):
    from overconf.data import make_splits
    from overconf.gan.fid import frechet_distance, study_fid_features
    from overconf.config.gan import FidConfig

    cfg = config_from_dict({"data": {"splits": {"target_train": 500, "shadow_train": 500, "calibration": 100,
                                                "target_test": 400, "shadow_test": 100}}})
    splits = make_splits(fmnist, cfg.data.splits, 0)
    features = study_fid_features(FidConfig(epochs=1, train_images=600), fmnist, splits, 0, Cache("x", enabled=False),
                                  CPU)
    real = fmnist.test_x[splits.target_test]
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    f_real = features(real)
    same = frechet_distance(f_real, f_real)
    halves = frechet_distance(f_real[:200], f_real[200:])
    to_noise = frechet_distance(f_real, features(noise))
    assert abs(same) < 1e-6 * max(1.0, to_noise)
    assert to_noise > 10 * halves > 0
    assert "salem_cnn" in features.description


def test_inception_features_load_local_weights_and_never_download(tmp_path, monkeypatch):
    import pytorch_fid.inception as inception
    import torchvision

    from overconf.gan.fid import InceptionFeatures

    def no_download(*a, **k):
        raise AssertionError("tried to download")

    # random weights of the right shapes stand in for the real file (never fetched in tests)
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(torchvision.models.Inception3, "load_state_dict", lambda self, sd, *a, **k: None)
    path = tmp_path / "pt_inception.pth"
    torch.save(inception.fid_inception_v3().state_dict(), path)
    monkeypatch.undo()
    monkeypatch.setattr(inception, "load_state_dict_from_url", no_download)
    monkeypatch.setattr("torch.hub.load_state_dict_from_url", no_download)
    feats = InceptionFeatures(path, CPU, batch_size=2)(torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8))
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()
    with pytest.raises(ConfigError, match="inception_weights.*not a file"):
        config_from_dict({"gan": {"fid": {"inception_weights": str(tmp_path / "missing.pth")}}})


def test_clopper_pearson_matches_scipy():
    from scipy.stats import binomtest

    for k, n in ((0, 10), (3, 10), (10, 10), (250, 1000)):
        ci = binomtest(k, n).proportion_ci(0.95, method="exact")
        lo, hi = clopper_pearson(k, n, 0.95)
        assert float(lo) == pytest.approx(ci.low, abs=1e-9) and float(hi) == pytest.approx(ci.high, abs=1e-9)


def pipeline(fmnist, conditional=False):
    """A generator with PyTorch's default init (its samples vary with z) and a target trained briefly."""
    from overconf.config import Recipe
    from overconf.gan.models import Generator
    from overconf.training import train_classifier

    with torch.random.fork_rng():
        torch.manual_seed(0)
        gen = Generator(channels=1, image_size=28, num_classes=10 if conditional else 0, latent_dim=8, width=4)
        target = build_model("salem_cnn", in_channels=1, num_classes=10, image_size=28, width=4, hidden=16)
    train_classifier(target, fmnist.normalize(fmnist.train_x[:500]), fmnist.train_y[:500], Recipe(epochs=2, lr=3e-3),
                     seed=0, device=CPU, progress=False)
    return FakePipeline(gen, target.eval(), CALIBRATIONS["none"](), fmnist.mean, fmnist.std, CPU)


def max_score_attack(threshold: float) -> Fitted:
    return Fitted(lambda s: s.log_probs.max(1).values, threshold)


def test_streaming_counts_flags_per_batch_with_exact_intervals(fmnist):
    p = pipeline(fmnist, conditional=True)
    fitted = {"all": max_score_attack(-math.inf), "none": max_score_attack(math.inf),
              "some": max_score_attack(math.log(0.11))}
    curve = stream(p, fitted, samples=70, batch_size=32, generator=torch.Generator().manual_seed(0))
    assert curve.samples.tolist() == [32, 64, 70]
    assert curve.flagged["all"].tolist() == [32, 64, 70] and curve.flagged["none"].tolist() == [0, 0, 0]
    assert np.all(np.diff(curve.flagged["some"]) >= 0)
    lo, hi = curve.interval("some")
    assert np.all(lo <= curve.fpr("some")) and np.all(curve.fpr("some") <= hi)
    assert curve.throughput > 0
    # the same fakes scored all at once (z drawn in the same batches) give the same count
    g = torch.Generator().manual_seed(0)
    z = torch.cat([latent(b, 8, generator=g) for b in (32, 32, 6)])
    y = class_labels(70, None, 10)
    with torch.no_grad():
        sig = p.signals(z, y, y)
    assert int((sig.log_probs.max(1).values >= math.log(0.11)).sum()) == curve.flagged["some"][-1]


def test_latent_search_raises_the_targets_max_score(fmnist):
    p = pipeline(fmnist)
    with torch.no_grad():  # threshold: the median max score of the random fakes the search starts from
        z0 = latent(24, 8, generator=torch.Generator().manual_seed(0))
        tau = float(p.signals(z0, None, torch.full((24,), -1)).log_probs.max(1).values.median())
    result = search_and_score(p, {"max_score": max_score_attack(tau)}, samples=24, batch_size=24, steps=30,
                              lr=0.3, kind="max_score", generator=torch.Generator().manual_seed(0))
    assert float(result.max_score["searched"].mean()) > float(result.max_score["random"].mean()) + 0.02
    assert result.losses[-1] < result.losses[0]
    assert result.flagged["random"]["max_score"] in (12, 13)  # torch.median: the lower middle value
    assert result.flagged["searched"]["max_score"] > 18
    assert result.images["searched"].dtype == torch.uint8 and result.images["searched"].shape == (24, 1, 28, 28)
    entropy = search_and_score(p, {}, samples=12, batch_size=12, steps=30, lr=0.3, kind="entropy", psi=1.5,
                               generator=torch.Generator().manual_seed(0))
    assert float(entropy.max_score["searched"].mean()) > float(entropy.max_score["random"].mean())
    assert entropy.losses[-1] < entropy.losses[0]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    from tests.conftest import TINY

    from overconf.runner.study import Study

    tmp = tmp_path_factory.mktemp("gan_study")
    raw = copy.deepcopy(TINY)
    raw.update(cache_dir=str(tmp / "checkpoints"), sources=["test", "fake", {"name": "fake_conditional", "psi": 1.5}],
               report={"figures": True, "tensorboard": True, "fp_grid": 4},
               gan=copy.deepcopy(TINY_GAN) | {"stream": {"samples": 300, "batch_size": 128},
                                              "search": {"samples": 24, "steps": 3, "batch_size": 12}})
    return Study(config_from_dict(raw), tmp / "run").run(), raw


def test_fakes_are_a_source_in_a_tiny_study(gan_run):
    from overconf.report.tables import Table

    result, _ = gan_run
    t = Table(result.rows)
    for src in ("fake", "fake_conditional"):
        for attack in ("max_score", "entropy", "salem_top3"):
            assert len(t.get("small_resnet", "baseline", attack, src, "fpr")) == 1
            assert t.get("small_resnet", "baseline", attack, src, "n_nonmembers") == [200.0]
        assert t.get("small_resnet", "baseline", "-", src, "fid")[0] > 0
        assert t.get("small_resnet", "baseline", "-", src, "fid_real")[0] > 0
        assert t.get("small_resnet", "baseline", "-", src, "gan_steps") == [4.0]
    cell = result.cells[0]
    assert set(cell.sources) == {"test", "fake", "fake_conditional"}
    assert bool((cell.sources["fake"].labels == -1).all())
    assert sorted(set(cell.sources["fake_conditional"].labels.tolist())) == list(range(10))


def test_streaming_and_search_rows_figures_and_tensorboard(gan_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from overconf.report.tables import Table

    result, _ = gan_run
    t = Table(result.rows)
    for attack in ("max_score", "entropy", "salem_top3"):
        assert t.get("small_resnet", "baseline", attack, "fake_stream", "samples") == [300.0]
        fpr = t.get("small_resnet", "baseline", attack, "fake_stream", "fpr")[0]
        lo = t.get("small_resnet", "baseline", attack, "fake_stream", "fpr_ci_low")[0]
        hi = t.get("small_resnet", "baseline", attack, "fake_stream", "fpr_ci_high")[0]
        assert lo <= fpr <= hi
        assert t.get("small_resnet", "baseline", attack, "fake_stream", "flagged")[0] == pytest.approx(300 * fpr)
        for src in ("fake_random", "fake_searched"):
            assert t.get("small_resnet", "baseline", attack, src, "samples") == [24.0]
    assert t.get("small_resnet", "baseline", "-", "fake_stream", "samples_per_second")[0] > 0
    d = result.run_dir
    assert (d / "figures" / "fake_stream_small_resnet_baseline_s0.png").is_file()
    summary = (d / "summary.md").read_text()
    assert "## GAN fakes" in summary and "penultimate layer of a salem_cnn" in summary
    assert "Streaming (`fake_stream`)" in summary and "Latent search" in summary
    acc = EventAccumulator(str(d / "tensorboard" / "small_resnet_baseline_s0"), size_guidance={"scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("stream/max_score/fpr")]
    assert steps == [128, 256, 300]
    gan_tb = EventAccumulator(str(d / "tensorboard" / "gan_unconditional_s0"), size_guidance={"images": 0})
    gan_tb.Reload()
    assert "gan/loss_d" in gan_tb.Tags()["scalars"] and "gan/samples" in gan_tb.Tags()["images"]
    rows = json.loads((d / "results.json").read_text())
    assert any(r["source"] == "fake_searched" for r in rows)


def test_rerun_reuses_the_generators(gan_run, tmp_path):
    from overconf.runner.study import Study

    result, raw = gan_run
    again = Study(config_from_dict(raw), tmp_path / "again").run(report=False)
    assert again.cache_misses == 0
    keep = ("fpr", "fid")
    assert [r for r in again.rows if r["metric"] in keep] == [r for r in result.rows if r["metric"] in keep]


def test_sample_command_writes_a_grid_and_tensors(gan_run, tmp_path, capsys):
    import yaml

    from overconf.cli import main

    _, raw = gan_run
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    args = ["sample", str(cfg), "--n", "6", "--conditional", "--classes", "0,Sneaker", "--psi", "1.5",
            "--no-progress", "--seed", "3"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = (torch.load(tmp_path / x / "samples.pt") for x in ("a", "b"))
    assert (tmp_path / "a" / "samples.png").stat().st_size > 0
    assert a["labels"].tolist() == [0, 7, 0, 7, 0, 7] and torch.equal(a["images"], b["images"])
    assert a["images"].shape == (6, 1, 28, 28) and float(a["z"].abs().max()) <= 1.5
    assert not list((tmp_path / "a").glob("tensorboard/*"))  # the study's generator was cached: no retraining
    assert main(["sample", str(cfg), "--out", str(tmp_path / "c"), "--classes", "0"]) == 2
    assert "fake_conditional" in capsys.readouterr().err


@pytest.mark.parametrize("gan,match", [
    ({"arch": "stylegan"}, r"unknown gan 'stylegan'.*dcgan"),
    ({"params": {"depth": 3}}, r"unknown parameter 'depth' for gan.params\(dcgan\); allowed: width, latent_dim"),
    ({"stepz": 3}, r"unknown config key 'gan.stepz'"),
    ({"search": {"objective": "loss"}}, r"gan.search.objective = 'loss'.*max_score, entropy"),
    ({"fid": {"classifier": "vgg"}}, r"unknown architecture 'vgg'"),
])
def test_bad_gan_settings_are_explained(tiny_raw, gan, match):
    tiny_raw["gan"] = gan
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw)


def test_bad_fake_source_params_are_explained(tiny_raw):
    tiny_raw["sources"] = [{"name": "fake", "classes": [0]}]
    with pytest.raises(ConfigError, match=r"unknown parameter 'classes' for sources\[0\]\(fake\); allowed: psi"):
        config_from_dict(tiny_raw)
    tiny_raw["sources"] = [{"name": "fake_conditional", "psi": -1}]
    with pytest.raises(ConfigError, match=r"psi must be a number > 0"):
        config_from_dict(tiny_raw)
