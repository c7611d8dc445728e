"""A "user" model trained outside overconf, to be audited by audit.yaml (docs/audit.md).

A small CNN (a plain ``nn.Module``, no overconf class) trained with a plain torch loop on 1,000
Fashion-MNIST training images; the script saves what an auditor needs: the state dict, the
member indices (the images it trained on) and public indices (other training images it never
saw: the auditor's shadow model, RMIA's population sample). audit.yaml imports ``make_model``
(the factory) from this file; the ``if __name__ == "__main__"`` guard keeps the import from training.

    python experiments/audit_example/train_user_model.py   # writes experiments/audit_example/user/
    overconf audit experiments/audit_example/audit.yaml

Fashion-MNIST is read from the Debian package's IDX files (``sudo apt-get install
dataset-fashion-mnist``) or ``--data DIR`` holding the four ``*-ubyte.gz`` files.
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.2860, 0.3530
"""Fashion-MNIST's pixel mean and std: inputs are (x / 255 - MEAN) / STD (ToTensor + Normalize)"""
MEMBERS, PUBLIC = 1000, 4000
EPOCHS, LR, BATCH_SIZE = 15, 1e-3, 64
"""the recipe, written again in audit.yaml: Adam, lr 1e-3, batch 64, 15 epochs, cross-entropy"""
SEED = 0


class UserCNN(nn.Module):
    """conv3x3-16, pool, conv3x3-32, pool, fc-64, fc-10 (ReLU)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def make_model() -> nn.Module:
    """The model factory the audit imports: an untrained UserCNN."""
    return UserCNN()


def train(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, seed: int, device) -> list[dict]:
    """The training loop (Adam, shuffled mini-batches, cross-entropy). It also fits overconf's
    ``model.train`` contract, so an audit can train its reference models with it instead of a recipe."""
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    history = []
    for epoch in range(EPOCHS):
        perm, total = torch.randperm(len(inputs), generator=g), 0.0
        for i in range(0, len(inputs), BATCH_SIZE):
            idx = perm[i: i + BATCH_SIZE]
            loss = F.cross_entropy(model(inputs[idx].to(device)), labels[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"epoch": epoch + 1, "loss": total / len(inputs)})
    return history


def read_idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX .gz files")
    p.add_argument("--out", default=str(Path(__file__).parent / "user"), help="where to save the model and indices")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    x = torch.from_numpy(read_idx(data / "train-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(data / "train-labels-idx1-ubyte.gz").copy()).long()
    tx = torch.from_numpy(read_idx(data / "t10k-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    ty = torch.from_numpy(read_idx(data / "t10k-labels-idx1-ubyte.gz").copy()).long()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    members, public = perm[:MEMBERS], perm[MEMBERS: MEMBERS + PUBLIC]
    normalize = lambda images: (images.float() / 255 - MEAN) / STD  # noqa: E731
    with torch.random.fork_rng():  # the initial weights from a fixed seed, the caller's RNG untouched
        torch.manual_seed(SEED)
        model = make_model()
    train(model, normalize(x[members]), y[members], seed=SEED, device=args.device)
    model.cpu().eval()
    with torch.no_grad():
        acc = {name: float((model(normalize(images)).argmax(1) == labels).float().mean())
               for name, images, labels in (("train", x[members], y[members]), ("test", tx[:1000], ty[:1000]))}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "user_model.pt")
    torch.save(members, out / "members.pt")
    torch.save(public, out / "public.pt")
    print(f"user model: train accuracy {acc['train']:.3f}, test accuracy {acc['test']:.3f}; saved to {out}/ "
          f"(user_model.pt, members.pt, public.pt)")


if __name__ == "__main__":
    main()
