"""overconf from Python, notebook style (cells marked ``# %%``; VS Code / Jupytext run them as cells).

    python experiments/api_example.py            # seconds on 2 CPU cores with the tiny study

Writes its run and cache under $OVERCONF_EXAMPLE_DIR (default runs/api_example).
"""
# %% A tiny study in a few lines: a config path or dict, overrides as keyword arguments
import os
from pathlib import Path

import torch

import overconf

out = Path(os.environ.get("OVERCONF_EXAMPLE_DIR", "runs/api_example"))
result = overconf.run("experiments/tiny.yaml", recipe__epochs=1, metrics__bootstrap=100,
                      settings={"baseline": {}, "T10": {"calibration": {"name": "temperature", "T": 10}}},
                      cache_dir=str(out / "checkpoints"), output_dir=str(out / "runs"),
                      report={"figures": False, "tensorboard": False}, progress=False)
print("run folder:", result.run_dir)

# %% The rows as a pandas DataFrame: every row names its setting's parameters
df = result.frame
fpr = df[(df.metric == "fpr") & (df.attack != "-")]
print(fpr.pivot_table(index=["setting", "calibration"], columns=["attack", "source"], values="value")
      .round(3).to_string())
print("T per row:", df.groupby("setting")["calibration.T"].first().to_dict())

# %% Per-sample scores of the study's attacks: (seed, model, setting) -> attack -> set -> scores
key = (0, "salem_cnn", "baseline")
members, test = result.scores[key]["max_score"]["members"], result.scores[key]["max_score"]["test"]
print(f"max_score: {len(members)} members, {len(test)} test images; threshold "
      f"{result.thresholds[key]['max_score']:.4f}")

# %% Attacks on plain tensors: fit on shadow logits, score any logits
g = torch.Generator().manual_seed(0)
shadow_in, shadow_out = torch.randn(500, 10, generator=g) * 4, torch.randn(500, 10, generator=g)
attack = overconf.attacks.fit("salem", shadow_in, shadow_out, k=3, epochs=20)
target = torch.randn(8, 10, generator=g) * 4
print("salem scores:", attack.score(target).numpy().round(2), "members:", attack.predict(target).tolist())

# %% Functional metrics on tensors
s_in, s_out = attack.score(shadow_in), attack.score(shadow_out)
print(f"AUROC {overconf.metrics.binary_auroc(s_in, s_out):.3f}; TPR at 1% FPR "
      f"{overconf.metrics.binary_tpr_at_fpr(s_in, s_out, max_fpr=0.01)[0]:.3f}; FPR [95% CI] "
      "{:.3f} [{:.3f}, {:.3f}]".format(*overconf.metrics.binary_fpr(s_out, attack.threshold)))

# %% Bring your own model and data: a trained nn.Module plus tensors, the study's evaluation rows
def train(x, y, seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(300):  # overfit a little: members get confident
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def data(n):
    x = torch.randn(n, 20, generator=g)
    return x, (x[:, :4].argmax(1) + (torch.rand(n, generator=g) < 0.3).long()) % 4  # 30% label noise


(x_in, y_in), (x_test, y_test), (xs_in, ys_in), (xs_out, ys_out) = data(200), data(200), data(200), data(200)
model, shadow = train(x_in, y_in, 0), train(xs_in, ys_in, 1)
byo = overconf.evaluate(model, (x_in, y_in), {"test": (x_test, y_test), "noise": torch.randn(200, 20, generator=g) * 5},
                        shadow=(shadow, (xs_in, ys_in), (xs_out, ys_out)), metrics={"bootstrap": 100})
print(byo.frame.query("metric in ('tpr', 'fpr', 'auroc')").pivot_table(
    index="attack", columns=["source", "metric"], values="value").round(3).to_string())
