"""Issue 24: auditing a user's own model (overconf.audit, `overconf audit`). The reference models are
trained with the user's factory and recipe; a mismatched recipe triggers the mimicry warning."""
from __future__ import annotations

import torch
from torch import nn

import overconf
import overconf.training.jobs as jobs_module
from overconf.data import load_dataset


def make_model() -> nn.Module:
    """The "user's" model: a small CNN for 1x28x28 inputs (not an overconf architecture)."""
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def user_data():
    ds = load_dataset("fashion_mnist")
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(ds.train_y), generator=g)
    members, public = perm[:160], perm[160:700]
    to = lambda idx: (ds.train_x[idx], ds.train_y[idx])  # noqa: E731
    return to(members), (ds.test_x[:160], ds.test_y[:160]), to(public), ds


def train_user_model(members, mean, std, epochs=6):
    """The user's own training loop (outside overconf): Adam 3e-3, batch 32."""
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = (members[0].float() / 255 - mean) / std
    y = members[1]
    for _ in range(epochs):
        for i in range(0, len(y), 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    return model


def audit(tmp_path, recipe, monkeypatch):
    members, nonmembers, public, ds = user_data()
    mean, std = float(ds.mean.flatten()[0]), float(ds.std.flatten()[0])
    target = train_user_model(members, mean, std)
    seen = []
    real = jobs_module.train_classifier

    def recording(model, x, y, recipe_, **kw):
        seen.append((kw.get("desc", ""), recipe_))
        return real(model, x, y, recipe_, **kw)

    monkeypatch.setattr(jobs_module, "train_classifier", recording)
    result = overconf.audit(factory=make_model, target=target, members=members, nonmembers=nonmembers, public=public,
                            normalize={"mean": [mean], "std": [std]}, recipe=recipe, attacks=["max_score", "lira"],
                            sources=["test", "gaussian"], reference={"num_models": 4, "mode": "sequential"},
                            data={"eval_size": 60, "fit_size": 60}, cache_dir=str(tmp_path / "cache"),
                            mimicry={"accuracy": 0.15, "loss": 0.4},  # 60 test images: accuracy sd ~0.06
                            run_dir=tmp_path / "run", write_report=False, progress=False)
    return result, seen


def test_the_reference_models_are_trained_with_the_users_recipe_and_a_mismatch_is_flagged(tmp_path, monkeypatch):
    recipe = {"optimizer": "adam", "lr": 3e-3, "epochs": 6, "batch_size": 32}
    result, seen = audit(tmp_path, recipe, monkeypatch)
    assert len(seen) >= 5  # the shadow and the 4 reference models; the target is the user's, never trained
    for desc, r in seen:
        assert (r.optimizer, r.lr, r.epochs, r.batch_size) == ("adam", 3e-3, 6, 32), desc
    frame = result.frame
    assert "max_score" in set(frame.attack) and any(a.startswith("lira") for a in set(frame.attack))
    mimic = frame[(frame.source == "mimicry")].set_index("metric").value
    assert mimic["reference_mismatch"] == 0 and mimic["shadow_mismatch"] == 0

    # a recipe far from how the target was trained: one epoch at a tiny learning rate
    result, _ = audit(tmp_path / "bad", {"optimizer": "adam", "lr": 1e-5, "epochs": 1, "batch_size": 32}, monkeypatch)
    mimic = result.frame[(result.frame.source == "mimicry")].set_index("metric").value
    assert mimic["reference_mismatch"] == 1 and mimic["shadow_mismatch"] == 1
    import json
    warnings = json.loads((result.run_dir / "status.json").read_text())["warnings"]
    assert any(w.startswith("mimicry: the reference models") for w in warnings), warnings
