"""Adversarial regularisation (Nasr, Shokri, Houmansadr, CCS 2018, "Machine learning with membership
privacy using adversarial regularization"; code SPIN-UMass/ML-Privacy-Regulization): a
training-time defense, min-max training.

An inference model h(f(x), y) (one MLP stream over the classifier's output f(x), 1024-512-64, one over
the one-hot label, 512-64, joined by 256-64-1: the paper's Table 7; PyTorch's default initialisation
from a seeded generator) learns to tell members D (the classifier's training set) from the
defender's reference set D' (the held-out **calibration split**, never an evaluation non-member set),
and the classifier f is penalised for h's success on its members.

``form: authors`` (default), as in the authors' Purchase / Texas scripts (``PPN_Purchase_GIT.py``):
h reads f's **raw logits** and the one-hot label and outputs sigmoid(h); h is trained on the mean
squared error to 1 on members and 0 on reference points; f minimises
CE + lambda * (mean_D sigmoid(h(f(x), y)) - 0.5), lambda = ``lam`` (3 in the Purchase script).
``form: paper`` (Algorithm 1): h reads the probability vector softmax(f(x)), is trained to maximise
the gain G = mean_D log h + mean_D' log(1 - h), and f minimises CE + lambda * mean_D log h (a push at
least twice the authors' at the same lambda: lambda only means the same with the same form).

The schedule is the authors' in both forms: ``warmup_epochs`` plain epochs first (their script: 1),
then h is pre-trained for ``pretrain_passes`` passes over (D, D') (their script: 5), then before every
step of f, ``k`` steps of h (their script: 52 steps of h then 2 of f, so k = 26), each on a member batch
and a reference batch of the recipe's batch size drawn (seeded) independently of f's batch, with f
fixed (eval mode, no gradient) while h trains. Adam with ``inference_lr`` (1e-4) for h.

Only the single-model loop (``Batch.model``) is supported: reference models of an aware attacker
train sequentially (``batched = False``). Randomness: h's initialisation from the job's seed, h's
batches from a generator seeded each epoch from the model's own batch generator. A killed training
resumes exactly: h, its optimizer and the game's progress are part of the resumable state. Rows
(``info``): h's accuracy on members and on reference points and its gain G, averaged over the last
epoch's steps of h.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed
from ..training.hooks import Batch, TrainingHooks
from .base import DEFENSES, Defense, held_out_inputs

STATS = ("member_accuracy", "reference_accuracy", "gain")
FORMS = ("authors", "paper")


class InferenceModel(nn.Module):
    """h(o, y): the membership logit (pre-sigmoid) of classifier outputs ``o`` [B, K] (logits or
    probabilities) with labels one-hot ``y`` [B, K] (Nasr et al. 2018, Fig. 2 / Table 7)."""

    def __init__(self, num_classes: int, seed: int):
        super().__init__()
        k = num_classes
        with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global RNG: leave it untouched
            self.prediction = nn.Sequential(nn.Linear(k, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                                            nn.Linear(512, 64), nn.ReLU())
            self.label = nn.Sequential(nn.Linear(k, 512), nn.ReLU(), nn.Linear(512, 64), nn.ReLU())
            self.combine = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                                         nn.Linear(64, 1))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # PyTorch's default Linear initialisation, from a seeded generator
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1 / layer.in_features ** 0.5
                    layer.weight.uniform_(-bound, bound, generator=g)
                    layer.bias.uniform_(-bound, bound, generator=g)

    def forward(self, outputs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.combine(torch.cat([self.prediction(outputs), self.label(onehot)], 1)).squeeze(1)


class _Game:
    """The game's state for the classifier being trained: h, its optimizer, the progress."""

    def __init__(self, num_classes: int, seed: int, lr: float, device):
        self.h = InferenceModel(num_classes, seed).to(device)
        self.optimizer = torch.optim.Adam(self.h.parameters(), lr=lr)
        self.epochs_done = 0
        self.pretrained = False
        self.sums = torch.zeros(len(STATS), dtype=torch.float64)
        self.count = 0


class AdversarialRegularisationHooks(TrainingHooks):
    """Min-max training against an inference model (see the module docstring)."""

    batched = False
    """the game needs the model object (Batch.model): reference models train sequentially"""
    stateful = True

    def __init__(self, x_ref: torch.Tensor, y_ref: torch.Tensor, num_classes: int, lam: float = 3.0, k: int = 26,
                 inference_lr: float = 1e-4, warmup_epochs: int = 1, pretrain_passes: int = 5, form: str = "authors"):
        self.x_ref, self.y_ref, self.num_classes = x_ref, y_ref, num_classes
        self.lam, self.k, self.inference_lr, self.warmup_epochs = float(lam), int(k), float(inference_lr), int(warmup_epochs)
        self.pretrain_passes, self.form = int(pretrain_passes), form
        self._game: _Game | None = None
        self._members: tuple[torch.Tensor, torch.Tensor] | None = None
        self._draws: torch.Generator | None = None
        self._batch_size = 1
        self._logits: torch.Tensor | None = None

    # ------------------------------------------------------------------ the loop's calls
    def begin(self, model, x, y, seed, saved=None) -> None:
        """A fresh game (h initialised from the job's seed) or the resumed one."""
        self._members = (x, y)
        self._game = _Game(self.num_classes, derive_seed(seed, "adversarial_regularisation", "h"),
                           self.inference_lr, x.device)
        if saved is not None:
            self._game.h.load_state_dict(saved["h"])
            self._game.optimizer.load_state_dict(saved["optimizer"])
            self._game.epochs_done, self._game.pretrained = int(saved["epochs_done"]), bool(saved["pretrained"])

    def saved(self) -> dict | None:
        g = self._game
        if g is None:
            return None
        return {"h": {k: v.detach().cpu().clone() for k, v in g.h.state_dict().items()},
                "optimizer": copy.deepcopy(g.optimizer.state_dict()), "epochs_done": g.epochs_done,
                "pretrained": g.pretrained}

    def batches(self, n, batch_size, generator, device):
        """Plain shuffled batches for f; then this epoch's generator for h's batches."""
        out = super().batches(n, batch_size, generator, device)
        self._draws = torch.Generator(device="cpu")
        self._draws.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device)))
        self._batch_size = batch_size
        return out

    def loss(self, recipe):
        """The recipe's loss, keeping the step's logits (with their graph) for the privacy term."""
        base = super().loss(recipe)

        def loss_fn(logits, labels, reduction="mean"):
            self._logits = logits
            return base(logits, labels, reduction=reduction)

        return loss_fn

    def gradient(self, loss: torch.Tensor, params: list[torch.Tensor], batch: Batch) -> None:
        if batch.model is None:
            raise NotImplementedError("adversarial_regularisation needs the single-model training loop (Batch.model)")
        g = self._game
        if g.epochs_done < self.warmup_epochs:
            loss.backward()
            return
        if not g.pretrained:
            steps = max(1, min(len(self._members[1]), len(self.y_ref)) // self._batch_size)
            self.train_inference(batch.model, self.pretrain_passes * steps, record=False)
            g.pretrained = True
        self.train_inference(batch.model, self.k)
        g.h.requires_grad_(False)
        try:
            (loss + self.lam * self.privacy_term(self._logits.float(), batch.y)).backward()
        finally:
            g.h.requires_grad_(True)

    def stop(self, state: Any) -> bool:
        """Never stops; records h's statistics of the epoch in its history row."""
        g = self._game
        g.epochs_done = state.epoch
        if g.count:
            for name, v in zip(STATS, (g.sums / g.count).tolist()):
                state.history[-1][f"adv_reg_{name}"] = v
        g.sums.zero_()
        g.count = 0
        return False

    # ------------------------------------------------------------------ the game
    def h_inputs(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What h reads: raw logits (authors) or probabilities (paper), and the one-hot label."""
        out = logits if self.form == "authors" else F.softmax(logits, 1)
        return out, F.one_hot(y, self.num_classes).to(out.dtype)

    def privacy_term(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f's penalty on its members: mean sigmoid(h) - 0.5 (authors) or mean log sigmoid(h) (paper)."""
        h = self._game.h(*self.h_inputs(logits, y))
        return torch.sigmoid(h).mean() - 0.5 if self.form == "authors" else F.logsigmoid(h).mean()

    def inference_loss(self, hm: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """h's loss on member logits ``hm`` and reference logits ``hr``: the MSE of sigmoid(h) to 1 / 0
        (authors) or minus the gain (paper)."""
        if self.form == "authors":
            return 0.5 * ((torch.sigmoid(hm) - 1).square().mean() + torch.sigmoid(hr).square().mean())
        return -(F.logsigmoid(hm).mean() + F.logsigmoid(-hr).mean())

    @torch.no_grad()
    def _logits_of(self, model: nn.Module, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """f's logits (eval mode) on ``x[index]``, each distinct row computed once: [len(index), K]."""
        rows, inverse = index.unique(return_inverse=True)
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        out = torch.cat([model(x[rows[i: i + 1024]].to(device)).float() for i in range(0, len(rows), 1024)])
        model.train(was)
        return out[inverse.to(out.device)]

    def train_inference(self, model: nn.Module, steps: int, record: bool = True) -> None:
        """``steps`` steps of h, each on a member batch and a reference batch of the batch size, drawn
        from this epoch's generator; f fixed (eval mode, no gradient) meanwhile."""
        g, (xm, ym), b = self._game, self._members, self._batch_size
        if steps <= 0:  # pretrain_passes: 0
            return
        mi = torch.randint(0, len(ym), (steps, b), generator=self._draws)
        ri = torch.randint(0, len(self.y_ref), (steps, b), generator=self._draws)
        zm = self._logits_of(model, xm, mi.flatten().to(xm.device)).view(steps, b, -1)
        zr = self._logits_of(model, self.x_ref, ri.flatten()).view(steps, b, -1)
        ym_all, yr_all = ym[mi.flatten().to(ym.device)].view(steps, b), self.y_ref[ri.flatten()].view(steps, b)
        for t in range(steps):
            hm = g.h(*self.h_inputs(zm[t], ym_all[t].to(zm.device)))
            hr = g.h(*self.h_inputs(zr[t], yr_all[t].to(zr.device)))
            g.optimizer.zero_grad(set_to_none=True)
            self.inference_loss(hm, hr).backward()
            g.optimizer.step()
            if record:
                with torch.no_grad():
                    gain = F.logsigmoid(hm).mean() + F.logsigmoid(-hr).mean()  # log h on D, log(1 - h) on D'
                    g.sums += torch.tensor([float((hm > 0).float().mean()), float((hr < 0).float().mean()),
                                            float(gain)], dtype=torch.float64)
                g.count += 1

    def describe(self) -> dict[str, Any]:
        return {"kind": "adversarial_regularisation", "form": self.form, "lambda": self.lam, "k": self.k,
                "inference_lr": self.inference_lr, "warmup_epochs": self.warmup_epochs,
                "pretrain_passes": self.pretrain_passes, "schedule": "separate_batches",
                "reference": tensor_digest(self.x_ref), "reference_labels": tensor_digest(self.y_ref)}


@DEFENSES.register("adversarial_regularisation")
class AdversarialRegularisation(Defense):
    """(training) Nasr et al. 2018 min-max training against an inference model on the held-out
    calibration split, the authors' form and schedule by default: ``form`` authors | paper, ``lam``
    (lambda, 3), ``k`` (steps of h per step of f, 26), ``inference_lr`` (1e-4), ``warmup_epochs``
    (plain epochs first, 1), ``pretrain_passes`` (passes of h before the game, 5)."""

    name = "adversarial_regularisation"
    kind = "training"
    uses_calibration_split = True

    def __init__(self, lam: float = 3.0, k: int = 26, inference_lr: float = 1e-4, warmup_epochs: int = 1,
                 pretrain_passes: int = 5, form: str = "authors"):
        for key, v in (("lam", lam), ("inference_lr", inference_lr)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "inference_lr" and v == 0):
                raise ConfigError(f"defense adversarial_regularisation: {key} = {v!r} must be a number "
                                  f"{'> 0' if key == 'inference_lr' else '>= 0'} (e.g. lam: 3, inference_lr: 1e-4)")
        for key, v, low in (("k", k, 1), ("warmup_epochs", warmup_epochs, 0), ("pretrain_passes", pretrain_passes, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"defense adversarial_regularisation: {key} = {v!r} must be an integer >= {low}")
        if form not in FORMS:
            raise ConfigError(f"defense adversarial_regularisation: form = {form!r} is not allowed; use authors "
                              f"(lambda * (mean h - 0.5), h on logits) or paper (lambda * mean log h)")
        self.lam, self.k, self.inference_lr, self.warmup_epochs = float(lam), k, float(inference_lr), warmup_epochs
        self.pretrain_passes, self.form = pretrain_passes, form

    def hooks_for(self, job, validation=None) -> AdversarialRegularisationHooks:
        x, labels = held_out_inputs(job, validation, "defense adversarial_regularisation trains its inference "
                                    "model against the held-out calibration split")
        return AdversarialRegularisationHooks(x, labels, job.num_classes, self.lam, self.k, self.inference_lr,
                                              self.warmup_epochs, self.pretrain_passes, self.form)

    def info(self, job, history: list[dict]) -> dict[str, float]:
        """h's accuracy on members / reference points and its gain, over the last epoch of the game."""
        last = next((h for h in reversed(history) if "adv_reg_gain" in h), {})
        return {f"adv_reg_{s}": float(last.get(f"adv_reg_{s}", float("nan"))) for s in STATS}
