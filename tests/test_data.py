import pytest
import torch

from overconf.config import SplitSizes
from overconf.data import SOURCES, SourceContext, load_dataset, make_splits
from overconf.data.datasets import resize_images
from overconf.core.errors import ConfigError, DataNotFoundError


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion_mnist")


SIZES = SplitSizes(target_train=1000, shadow_train=1000, calibration=500, target_test=600, shadow_test=600)


def test_fashion_mnist_loads_from_the_debian_package(fmnist):
    assert fmnist.train_x.shape == (60000, 1, 28, 28) and fmnist.train_x.dtype == torch.uint8
    assert fmnist.test_x.shape == (10000, 1, 28, 28)
    assert fmnist.num_classes == 10
    assert float(fmnist.mean) == pytest.approx(0.2860, abs=1e-3)
    assert float(fmnist.std) == pytest.approx(0.3530, abs=1e-3)


def test_splits_are_disjoint_stratified_and_reproducible(fmnist):
    a = make_splits(fmnist, SIZES, seed=0)
    b = make_splits(fmnist, SIZES, seed=0)
    c = make_splits(fmnist, SIZES, seed=1)
    train = [a.target_train, a.shadow_train, a.calibration, a.reserve]
    assert sum(len(t) for t in train) == 60000
    assert len(torch.unique(torch.cat(train))) == 60000
    assert len(torch.unique(torch.cat([a.target_test, a.shadow_test]))) == 1200
    for name in ("target_train", "shadow_train", "calibration", "target_test", "shadow_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))
    counts = torch.bincount(fmnist.train_y[a.target_train], minlength=10)
    assert int(counts.min()) >= 99 and int(counts.max()) <= 101
    # every prefix is stratified too (members for evaluation are a prefix)
    counts = torch.bincount(fmnist.train_y[a.target_train[:200]], minlength=10)
    assert int(counts.min()) >= 19 and int(counts.max()) <= 21


def test_splits_too_large_name_the_keys(fmnist):
    with pytest.raises(ConfigError, match="data.splits.target_test=9000"):
        make_splits(fmnist, SplitSizes(target_test=9000, shadow_test=2000), seed=0)


def ctx(fmnist, size=100, seed=0):
    splits = make_splits(fmnist, SIZES, seed=0)
    return SourceContext(fmnist, splits, size, torch.Generator().manual_seed(seed), seed)


def test_test_source_is_the_target_test_split(fmnist):
    c = ctx(fmnist)
    d = SOURCES["test"](c)
    assert torch.equal(d.images, fmnist.test_x[c.splits.target_test[:100]])
    assert torch.equal(d.y, fmnist.test_y[c.splits.target_test[:100]])
    assert d.pool == "test" and torch.equal(d.pool_index, c.splits.target_test[:100])
    assert torch.allclose(d.x, fmnist.normalize(d.images))


def test_permuted_source_permutes_pixels_of_each_image(fmnist):
    c = ctx(fmnist)
    d, t = SOURCES["permuted"](c), SOURCES["test"](ctx(fmnist))
    assert torch.equal(d.images.flatten(1).sort(1).values, t.images.flatten(1).sort(1).values)
    assert (d.images != t.images).flatten(1).any(1).float().mean() > 0.99
    assert bool((d.y == -1).all())


def test_permutation_is_shared_across_channels():
    from overconf.data.datasets import ImageDataset
    from overconf.data.splits import Splits

    x = torch.arange(3 * 16, dtype=torch.uint8).view(1, 3, 4, 4).repeat(5, 1, 1, 1)
    ds = ImageDataset("toy", x, torch.zeros(5, dtype=torch.long), x, torch.arange(5) % 2, ["a", "b"])
    idx = torch.arange(5)
    splits = Splits(idx, idx, idx, idx, idx, idx)
    d = SOURCES["permuted"](SourceContext(ds, splits, 5, torch.Generator().manual_seed(0), 0))
    # channel c holds 16c + position: the same permutation keeps the channel offsets aligned
    diffs = d.images[:, 1].long() - d.images[:, 0].long()
    assert bool((diffs == 16).all())


def test_scaled_and_unnormalized_sources(fmnist):
    t = SOURCES["test"](ctx(fmnist))
    s = SOURCES["scaled"](ctx(fmnist))
    u = SOURCES["unnormalized"](ctx(fmnist))
    assert torch.allclose(s.x, t.x * 255)
    assert torch.allclose(u.x, t.images.float() / 255)
    assert torch.equal(s.y, t.y)


def test_derived_sources_carry_the_pool_indices_of_their_originals(fmnist):
    """permuted / scaled / unnormalized are made from target_test[:size], one input per image, in
    order: they name those images (their keep status for reference models) and are marked derived
    (not the unchanged images: nothing may reuse the originals' outputs for them)."""
    c = ctx(fmnist)
    t = SOURCES["test"](c)
    assert t.derived is False
    for name in ("permuted", "scaled", "unnormalized"):
        d = SOURCES[name](ctx(fmnist))
        assert d.pool == "test" and torch.equal(d.pool_index, c.splits.target_test[:100]), name
        assert d.derived is True, name
        assert not torch.equal(d.x, t.x)
    for name in ("gaussian", "uniform", "digits"):
        d = SOURCES[name](ctx(fmnist))
        assert d.pool is None and d.pool_index is None and d.derived is False, name


def test_noise_sources_are_seeded(fmnist):
    for name in ("gaussian", "uniform"):
        a, b, c = (SOURCES[name](ctx(fmnist, seed=s)) for s in (0, 0, 1))
        assert a.x.shape == (100, 1, 28, 28)
        assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    g = SOURCES["gaussian"](ctx(fmnist, size=2000))
    assert float(g.x.mean()) == pytest.approx(0.0, abs=0.15)


def test_digits_source_is_resized_natural_ood(fmnist):
    d = SOURCES["digits"](ctx(fmnist, size=5000))
    assert d.x.shape == (1797, 1, 28, 28)  # all of them: fewer than asked
    assert int(d.images.max()) > 200


def test_resize_converts_channels():
    x = torch.randint(0, 256, (4, 3, 96, 96), dtype=torch.uint8)
    assert resize_images(x, (1, 28, 28)).shape == (4, 1, 28, 28)
    assert resize_images(x[:, :1], (3, 32, 32)).shape == (4, 3, 32, 32)


def test_missing_data_names_the_install_command(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", root=str(tmp_path))


def test_torchvision_dataset_without_root_explains_the_flag():
    with pytest.raises(DataNotFoundError, match="data.root"):
        load_dataset("cifar10")


def test_torchvision_dataset_missing_under_root_never_downloads(tmp_path):
    with pytest.raises(DataNotFoundError, match="data.download=true"):
        load_dataset("svhn", root=str(tmp_path))


# ----------------------------------------------------------------------------- member overlap

def test_image_digests_identify_content_and_are_fast(fmnist):
    import time

    from overconf.data.sources import image_digests

    x = fmnist.train_x[:10].clone()
    y = x.clone()
    y[3, 0, 5, 5] ^= 1  # one bit of one pixel
    dx, dy = image_digests(x), image_digests(y)
    assert [a == b for a, b in zip(dx, dy)] == [i != 3 for i in range(10)]
    assert image_digests(x[:2].reshape(2, 1, 14, 56)) != dx[:2]  # same bytes, other shape
    start = time.perf_counter()
    digests = image_digests(fmnist.train_x)
    assert time.perf_counter() - start < 10  # 60k images: ~0.2 s measured (a loaded 2-core CPU)
    assert len(set(digests)) == 60000  # Fashion-MNIST's train pool has no exact duplicates


def digits_study(tmp_path, **data):
    from overconf.runner.validation import config_from_dict
    from overconf.runner.study import Study

    raw = {"name": "digits_overlap", "seeds": [0], "device": "cpu", "progress": False,
           "data": {"dataset": "digits", "eval_size": 100, "fit_size": 100,
                    "splits": {"target_train": 400, "shadow_train": 400, "calibration": 200,
                               "target_test": 200, "shadow_test": 200}, **data},
           "models": [{"arch": "small_resnet", "params": {"width": 4}}],
           "recipe": {"epochs": 1, "batch_size": 64}, "sources": ["digits", "test", "gaussian"],
           "attacks": ["max_score"], "settings": {"baseline": {}}, "metrics": {"bootstrap": 10},
           "report": {"figures": False, "tensorboard": False},
           "cache_dir": str(tmp_path / "checkpoints"), "output_dir": str(tmp_path / "runs")}
    study = Study(config_from_dict(raw), tmp_path / "run")
    study.dataset = load_dataset("digits")
    study.splits = make_splits(study.dataset, study.cfg.data.splits, 0)
    study.seed = 0
    return study


def equal_to_any(images, others):
    """bool [N]: image i equals one of ``others`` pixel for pixel (a direct comparison, no hashing)."""
    return (images.flatten(1)[:, None, :] == others.flatten(1)[None, :, :]).all(-1).any(1)


def test_a_source_holding_target_members_is_refused_or_cleaned(tmp_path):
    """The digits source (all 1,797 digits by default) in a digits study holds target training
    images: members presented as non-members. Refused by default; data.overlap: remove drops them."""
    from overconf.runner.validation import config_from_dict
    from overconf.core.seeding import generator

    study = digits_study(tmp_path)
    members, _ = study.splits.images(study.dataset, "target_train")
    raw_source = SOURCES["digits"](SourceContext(study.dataset, study.splits, 100, generator(0, "source", "digits"), 0))
    overlap = equal_to_any(raw_source.images, members)
    n = int(overlap.sum())
    assert n > 5  # ~100 x 400 / 1797 expected
    with pytest.raises(ConfigError, match=rf"source 'digits': {n} of its 100 images are training images.*"
                                          rf"data.overlap: remove"):
        study.build_sources(0)

    study = digits_study(tmp_path, overlap="remove")
    sources = study.build_sources(0)
    d = sources["digits"]
    assert d.info["overlap_removed"] == n and len(d) == 100 - n
    assert torch.equal(d.images, raw_source.images[~overlap])
    assert torch.equal(d.x, raw_source.x[~overlap]) and torch.equal(d.y, raw_source.y[~overlap])
    assert not equal_to_any(d.images, members).any()
    assert sources["test"].info["overlap_removed"] == 0 and sources["gaussian"].info["overlap_removed"] == 0
    assert len(sources["test"]) == 100

    result = study.run(report=False)  # the count is reported as a source row
    rows = {(r["source"], r["metric"]): r["value"] for r in result.rows if r["attack"] == "-"}
    assert rows[("digits", "overlap_removed")] == n
    fpr = [r for r in result.rows if r["attack"] == "max_score" and r["source"] == "digits" and r["metric"] == "fpr"]
    assert len(fpr) == 1

    with pytest.raises(ConfigError, match="data.overlap = 'drop'.*refuse, remove"):
        config_from_dict({"data": {"overlap": "drop"}})


def test_overlap_removal_keeps_pool_indices_aligned(fmnist):
    """A source of pool images (the keep status of reference models) loses the same rows."""
    from overconf.data.sources import image_digests, without_members

    c = ctx(fmnist)
    d = SOURCES["scaled"](c)
    members = set(image_digests(d.images[[2, 7]]))
    out = without_members("scaled", d, members, "remove")
    keep = torch.ones(100, dtype=torch.bool)
    keep[[2, 7]] = False
    assert out.info["overlap_removed"] == 2 and len(out) == 98
    assert torch.equal(out.pool_index, c.splits.target_test[:100][keep])
    assert out.derived and out.pool == "test"
