"""The audit's config (torch-free schema), the user's data readers and layout, the wrapper of a
user's module, the factory's cache identity and the target's weights (overconf.config.audit,
overconf.data.user_data / audit_data, overconf.models.wrapped, overconf.runner.audit.user_code)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from overconf.config.audit import is_audit, parse_audit, read_audit
from overconf.config.factors import is_factors
from overconf.core.errors import ConfigError
from overconf.data.audit_data import audit_dataset
from overconf.data.user_data import as_images, read_any, read_spec
from overconf.models.wrapped import WrappedModule, as_classifier
from overconf.runner.audit.user_code import import_function, model_factory, target_state, weights_digest
from overconf.training.jobs import ClassifierJob
from overconf.config import Recipe

EXAMPLE = "experiments/audit_example/audit.yaml"


def test_the_example_config_parses_and_dispatches():
    cfg = read_audit(EXAMPLE)
    assert cfg.model.factory == "train_user_model:make_model" and cfg.reference.num_models >= 8
    assert {"lira", "rmia"} <= {c.name for c in cfg.attacks} and cfg.recipe.epochs == 15
    assert is_audit(EXAMPLE) and not is_factors(EXAMPLE) and not is_audit("experiments/tiny.yaml")
    assert is_factors("experiments/causal_factors_fashion_mnist.yaml")
    with pytest.raises(ConfigError, match="study: audit"):
        is_audit({"study": "audits"})
    default = parse_audit({"study": "audit"})
    assert {"lira", "rmia", "shokri", "label_only_noise"} <= {c.name for c in default.attacks}  # every attack


@pytest.mark.parametrize("raw, match", [
    ({"modell": {}}, "unknown config key 'modell'"),
    ({"model": {"factory": "no_colon"}}, "module:function"),
    ({"data": {"members": {"tensors": "a.pt", "dataset": "digits"}}}, "exactly one of"),
    ({"data": {"members": {"tensor": "a.pt"}}}, "unknown key 'data.members.tensor'"),
    ({"data": {"members": {"dataset": "mnist"}}}, "unknown dataset 'mnist'"),
    ({"recipe": {"dropout": 0.5}}, "dropout"),
    ({"recipe": {"epochs": 1}, "model": {"train": "m:f"}}, "either recipe .* or model.train"),
    ({"model": {"train": "m:f"}, "reference": {"mode": "batched"}}, "batched"),
    ({"reference": {"num_models": 3}}, "even"),
    ({"normalize": {"std": [0.0]}}, "normalize.std"),
    ({"attacks": ["lira", "lirra"]}, "unknown attack 'lirra'"),
    ({"data": {"overlap": "keep"}}, "data.overlap"),
])
def test_bad_audit_configs_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_audit({"study": "audit", **raw})


def test_images_from_tensors_datasets_and_folders(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 1, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(as_images(x.float() / 255, "x"), x)  # ToTensor's floats are read back exactly
    assert torch.equal(as_images(x[:, 0].numpy(), "x"), x) and torch.equal(as_images(x.permute(0, 2, 3, 1), "x"), x)
    with pytest.raises(ConfigError, match="normalised"):
        as_images((x.float() / 255 - 0.5) / 0.2, "x")
    torch.save({"images": x, "labels": y}, tmp_path / "d.pt")
    xs, ys = read_spec({"tensors": "d.pt", "indices": [5, 1], "limit": 1}, tmp_path, "data.members")
    assert torch.equal(xs, x[[5]]) and ys.tolist() == [2]

    class Raw:  # torchvision-style: raw .data / .targets (its transform is not applied)
        data, targets = x[:, 0].numpy(), y.tolist()

        def __len__(self):
            return 6

        def __getitem__(self, i):
            raise AssertionError("the raw arrays are read, not the transformed items")

    class Items:  # only items: (PIL image, label)
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return Image.fromarray(x[i, 0].numpy()), int(y[i])

    for ds in (Raw(), Items()):
        xs, ys = read_any(ds, "data.members")
        assert torch.equal(xs, x) and torch.equal(ys, y)
    for k in range(3):
        (tmp_path / "folder" / f"c{k}").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(x[i, 0].numpy()).save(tmp_path / "folder" / f"c{int(y[i])}" / f"{i}.png")
    xs, ys = read_any(tmp_path / "folder", "data.members")
    order = torch.tensor([0, 3, 1, 4, 2, 5])  # class by class, files sorted
    assert torch.equal(xs, x[order]) and torch.equal(ys, y[order]) and xs.shape[1] == 1


def test_layout_splits_and_normalisation():
    g = torch.Generator().manual_seed(0)

    def part(n, start):
        images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(start, start + n) % 256  # distinct images
        images[:, 0, 0, 1] = torch.arange(start, start + n) // 256
        return images, torch.arange(n) % 3

    m, o, p = part(40, 0), part(30, 1000), part(60, 2000)
    ds = audit_dataset(m, o, p, mean=[0.5], std=[0.25], num_classes=3, seed=0, eval_size=20, calibration=4)
    s = ds.splits
    assert torch.equal(ds.train_x[s.target_train], m[0]) and torch.equal(ds.test_x[s.target_test], o[0])
    assert ds.sizes == {"target_train": 40, "shadow_train": 28, "calibration": 4, "target_test": 30,
                        "shadow_test": 20, "reserve": 8, "eval_size": 20, "fit_size": 20}
    public = torch.cat([ds.train_x[s.shadow_train], ds.test_x[s.shadow_test], ds.train_x[s.calibration],
                        ds.train_x[s.reserve]])
    assert sorted(public.flatten(1).tolist()) == sorted(p[0].flatten(1).tolist())  # every public image, once
    # torchvision's ToTensor + Normalize(0.5, 0.25), bit for bit
    assert torch.equal(ds.normalize(m[0]), (m[0].float().div(255) - torch.tensor([0.5]).view(1, 1, 1))
                       / torch.tensor([0.25]).view(1, 1, 1))
    # no public data: the non-members beyond eval_size are the public data
    ds = audit_dataset(m, o, None, mean=[0.0], std=[1.0], num_classes=3, seed=0, eval_size=10)
    assert len(ds.splits.target_test) == 10 and ds.sizes["shadow_train"] + ds.sizes["shadow_test"] <= 20
    with pytest.raises(ConfigError, match="equal to member images"):
        audit_dataset(m, (m[0][:5], m[1][:5]), p, mean=[0.0], std=[1.0], num_classes=3, seed=0)
    kept = audit_dataset(m, (torch.cat([m[0][:5], o[0]]), torch.cat([m[1][:5], o[1]])), p, mean=[0.0], std=[1.0],
                         num_classes=3, seed=0, overlap="remove")
    assert torch.equal(kept.test_x[kept.splits.target_test], o[0])
    with pytest.raises(ConfigError, match="public data hold 60 images"):
        audit_dataset(m, o, p, mean=[0.0], std=[1.0], num_classes=3, seed=0, shadow_train=50)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(x.flatten(1)) * 30  # large logits


def make_net():
    return Net()


def test_a_wrapped_module_gives_its_own_logits_and_trains_only_its_own_weights():
    net = make_net()
    model = as_classifier(net, 3)
    x = torch.randn(5, 1, 4, 4)
    assert isinstance(model, WrappedModule) and torch.equal(model(x), net(x))
    assert [n for n, _ in model.named_parameters()] == ["net.fc.weight", "net.fc.bias"]  # the head is fixed
    head = nn.Linear(3, 3)
    head.load_state_dict(model.head.state_dict())  # as the calibrations copy a head
    assert torch.equal(head(model.features(x)), model(x))
    from overconf.models import build_model

    salem = build_model("salem_cnn", in_channels=1, num_classes=10, image_size=8, width=2, hidden=4)
    assert as_classifier(salem, 10) is salem


def test_the_factory_keys_the_cache_and_the_weights_are_read_safely(tmp_path):
    fac = model_factory(make_net, "tests:make_net")
    job = ClassifierJob("net", Recipe(), 0, torch.zeros(4, 1, 4, 4, dtype=torch.uint8), torch.zeros(4).long(),
                        torch.zeros(1, 1, 1), torch.ones(1, 1, 1), 3)
    with_factory = dataclasses.replace(job, factory=fac)
    keys = {job.key, with_factory.key, dataclasses.replace(job, factory=fac.for_target("abc")).key}
    assert len(keys) == 3  # no factory: the study's key; the factory and the audited target: their own
    assert fac.content["source"] and fac.content["structure"]
    a, b = with_factory.build(), with_factory.build()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # seeded init
    net = make_net()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    torch.save(net, tmp_path / "module.pt")
    assert weights_digest(target_state(tmp_path / "sd.pt")) == weights_digest(target_state(net))
    with pytest.raises(ConfigError, match="weights_only"):
        target_state(tmp_path / "module.pt")
    (tmp_path / "code.py").write_text("def make():\n    return 'not a module'\n")
    with pytest.raises(ConfigError, match="must return an untrained torch.nn.Module"):
        model_factory(import_function("code.py:make", tmp_path, "model.factory"), "code.py:make")
    with pytest.raises(ConfigError, match="has no 'nope'"):
        import_function("code.py:nope", tmp_path, "model.factory")
    with pytest.raises(ConfigError, match="must accept"):
        model_factory(make_net, "x", fit=lambda model: None, fit_name="fit")
