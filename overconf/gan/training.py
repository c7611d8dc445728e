"""GAN training on device-resident images, cached under kind "generators" by content.

A generator's key hashes its training images and labels, architecture and parameters, whether it
is class-conditional, the recipe (its set values: :data:`GAN_RECIPE_KEY_FIELDS`) and the seed: never anything it generates (regenerated images
differ bit-wise across GPUs; the training content does not). Loss: the non-saturating GAN loss
(Goodfellow et al. 2014), L_D = softplus(-D(x)) + softplus(D(G(z))), L_G = softplus(-D(G(z))),
with Adam (lr 2e-4, beta1 0.5) as in DCGAN. Batches and latents come from seeded generators on the
device; losses are summed on the device and read once per ``log_every`` steps, when TensorBoard
gets the losses and a grid of samples at fixed latents. A resumable state is saved at most every
``checkpoint_every`` seconds, so a killed run continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from overconf.core.device import fixed_threads
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from overconf.core.cache import Cache, content_key, set_values, tensor_digest
from overconf.core.device import autocast, memory_format, precision, to_cpu, to_device_images
from overconf.core.errors import ConfigError, TrainingDivergedError
from overconf.core.plain_data import is_state_dict_of
from overconf.core.seeding import derive_seed, generator, isolated_rng
from ..config.gan import GanConfig, GanRecipe
from .models import GANS, Discriminator, Generator
from .sampling import class_labels, latent

log = logging.getLogger(__name__)
GAN_VERSION = 1
GAN_RECIPE_KEY_FIELDS = ("steps", "batch_size", "lr", "beta1", "beta2")
"""The GanRecipe fields of GAN_VERSION 1, always in a generator's key; a field added since enters
only when set to a non-default value (:func:`~overconf.core.cache.set_values`)."""
GRID = 64


@dataclass
class GanJob:
    """What determines a trained generator."""

    arch: str
    params: dict
    conditional: bool
    recipe: GanRecipe
    seed: int
    images: torch.Tensor
    """uint8 training images [N, C, H, W] (disjoint from every member set)"""
    labels: torch.Tensor
    num_classes: int
    name: str = "gan"
    """display name only (not part of the key)"""
    precision: str = "float32"
    """of training (:func:`overconf.core.device.precision`); set by :func:`load_or_train_generator`
    from the device, keyed only when not float32"""

    @property
    def key(self) -> str:
        extra = {"precision": self.precision} if self.precision != "float32" else {}
        return content_key({**extra,
            "kind": "generator", "version": GAN_VERSION, "arch": self.arch, "params": self.params,
            "conditional": self.conditional, "recipe": set_values(self.recipe, GAN_RECIPE_KEY_FIELDS),
            "seed": self.seed, "images": tensor_digest(self.images), "labels": tensor_digest(self.labels),
            "num_classes": self.num_classes,
        })

    def build(self) -> tuple[Generator, Discriminator]:
        c, h, _ = self.images.shape[1:]
        with isolated_rng(derive_seed(self.seed, "gan", "init")):
            return GANS[self.arch](channels=c, image_size=h, num_classes=self.num_classes if self.conditional else 0,
                                   **self.params)


@dataclass
class TrainedGenerator:
    key: str
    generator: Generator
    """in eval mode, on the device"""
    history: list[dict]
    seconds: float
    """training time (when it was trained, if loaded from the cache)"""
    job: GanJob


@dataclass
class GanState:
    """Everything needed to continue training after ``step`` steps."""

    step: int
    generator: dict
    discriminator: dict
    opt_g: dict
    opt_d: dict
    batch_rng: torch.Tensor
    latent_rng: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def study_gan_job(gan: GanConfig, dataset, splits, seed: int, conditional: bool) -> GanJob:
    """The generator of a study seed: trained on the first ``gan.train_images`` reserve images."""
    idx = splits.reserve[: gan.train_images]
    if len(idx) == 0:
        raise ConfigError("the reserve split is empty, so no GAN can be trained on data disjoint from the "
                          "members; lower data.splits sizes so that some of the train pool is left over")
    return GanJob(gan.arch, dict(gan.params), conditional, gan.recipe(), seed, dataset.train_x[idx],
                  dataset.train_y[idx], dataset.num_classes, name=f"gan {gan_name(conditional)} s{seed}")


def gan_name(conditional: bool) -> str:
    return "conditional" if conditional else "unconditional"


def study_generator(gan: GanConfig, dataset, splits, seed: int, conditional: bool, cache: Cache,
                    device: torch.device, *, progress: bool = True,
                    log_dir: str | Path | None = None) -> TrainedGenerator:
    """Load (or train, logging to ``log_dir/gan_<kind>_s<seed>``) the generator of a study seed."""
    job = study_gan_job(gan, dataset, splits, seed, conditional)
    tb = Path(log_dir) / f"gan_{gan_name(conditional)}_s{seed}" if log_dir is not None else None
    return load_or_train_generator(job, cache, device, progress=progress, log_dir=tb, log_every=gan.log_every)


def load_or_train_generator(job: GanJob, cache: Cache, device: torch.device, *, progress: bool = True,
                            log_dir: str | Path | None = None, log_every: int = 100,
                            checkpoint_every: float = 60.0) -> TrainedGenerator:
    job = dataclasses.replace(job, precision=precision(device))
    key = job.key
    gen, disc = job.build()
    valid = stored_generator_of(gen)
    found = cache.load("generators", key, valid)
    if found is None:
        with cache.lock("generators", key, job.name):  # another run may be training it: wait, then reuse
            found = cache.load("generators", key, valid)
            if found is None:
                return _train_and_store_generator(job, gen, disc, cache, device, progress, log_dir, log_every,
                                                  checkpoint_every)
    cache.hits += 1
    gen.load_state_dict(found["generator"])
    return TrainedGenerator(key, gen.to(device).eval(), found["history"], found["seconds"], job)


def stored_generator_of(gen: Generator):
    """The structure check of a ``generators`` entry of ``gen`` (:meth:`Cache.load`'s ``valid``)."""
    template = gen.state_dict()
    return lambda d: (is_state_dict_of(d["generator"], template) and isinstance(d["history"], list)
                      and isinstance(d["seconds"], (int, float)))


def resumable_gan_state_of(gen: Generator, disc: Discriminator):
    """The structure check of a GAN's ``partial`` entry: a :class:`GanState` of ``gen`` and ``disc``."""
    g, d_ = gen.state_dict(), disc.state_dict()
    return lambda d: (d.keys() == {f.name for f in dataclasses.fields(GanState)} and isinstance(d["step"], int)
                      and is_state_dict_of(d["generator"], g) and is_state_dict_of(d["discriminator"], d_))


def _train_and_store_generator(job: GanJob, gen: Generator, disc: Discriminator, cache: Cache, device: torch.device,
                               progress: bool, log_dir: str | Path | None, log_every: int,
                               checkpoint_every: float) -> TrainedGenerator:
    key = job.key
    cache.misses += 1
    resume = cache.load("partial", key, resumable_gan_state_of(gen, disc))
    state = GanState(**resume) if resume is not None else None
    if state is not None:
        log.info("resuming %s from step %d", job.name, state.step)
    save_partial = cache.partial_saver(key, checkpoint_every)

    def on_log(s: GanState) -> None:
        if s.step < job.recipe.steps:
            save_partial(lambda: to_cpu(dataclasses.asdict(s)))

    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir))
    try:
        history, seconds = train_gan(gen, disc, job.images, job.labels, job.recipe, seed=job.seed, device=device,
                                     resume=state, on_log=on_log, progress=progress, desc=job.name,
                                     writer=writer, log_every=log_every)
    finally:
        if writer is not None:
            writer.close()
    bad = [k for k, v in gen.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a non-finite generator is never cached
        raise TrainingDivergedError(f"training of {job.name} diverged (non-finite weights in {bad[0]}); lower "
                                    f"gan.lr (now {job.recipe.lr:g}) or change gan.beta1 / gan.batch_size")
    cache.save("generators", key, {"generator": to_cpu(gen.state_dict()), "history": history, "seconds": seconds,
                                   "arch": job.arch, "params": job.params, "conditional": job.conditional,
                                   "recipe": dataclasses.asdict(job.recipe), "seed": job.seed})
    cache.discard("partial", key)
    return TrainedGenerator(key, gen.eval(), history, seconds, job)


@fixed_threads
def train_gan(gen: Generator, disc: Discriminator, images: torch.Tensor, labels: torch.Tensor, recipe: GanRecipe,
              *, seed: int, device: torch.device, resume: GanState | None = None,
              on_log: Callable[[GanState], None] | None = None, progress: bool = True, desc: str = "gan",
              writer=None, log_every: int = 100) -> tuple[list[dict], float]:
    """Train ``gen`` and ``disc`` in place on uint8 ``images``; returns (history, seconds).

    History: one entry per ``log_every`` steps with the mean D and G losses and the mean
    discriminator outputs D(x) and D(G(z)) (as probabilities) over those steps."""
    fmt = memory_format(device)
    gen.to(device, memory_format=fmt).train()
    disc.to(device, memory_format=fmt).train()
    x = to_device_images(images.to(device).float().div_(127.5).sub_(1), device)
    y = labels.to(device)
    n, bs, cond = len(x), recipe.batch_size, gen.conditional
    opt_g = torch.optim.Adam(gen.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    batches = generator(seed, "gan", "batches", device=device)
    latents = generator(seed, "gan", "latents", device=device)
    fixed = latent(GRID, gen.latent_dim, generator=generator(seed, "gan", "grid", device=device))
    fixed_y = class_labels(GRID, None, gen.num_classes, device=device) if cond else None
    history, start, spent = [], 0, 0.0
    if resume is not None:
        gen.load_state_dict(resume.generator)
        disc.load_state_dict(resume.discriminator)
        opt_g.load_state_dict(resume.opt_g)
        opt_d.load_state_dict(resume.opt_d)
        batches.set_state(resume.batch_rng)
        latents.set_state(resume.latent_rng)
        history, start, spent = list(resume.history), resume.step, resume.seconds

    sums, last_log = torch.zeros(4, device=device), start
    t0 = time.perf_counter()
    bar = tqdm(range(start, recipe.steps), desc=desc, disable=not progress, leave=False, initial=start,
               total=recipe.steps)
    for step in bar:
        idx = torch.randint(n, (bs,), generator=batches, device=device)
        real, y_real = x[idx], (y[idx] if cond else None)
        z = torch.randn(bs, gen.latent_dim, generator=latents, device=device)
        y_fake = torch.randint(gen.num_classes, (bs,), generator=batches, device=device) if cond else None
        with autocast(device):
            fake = gen(z, y_fake)
            d_real, d_fake = disc(real, y_real), disc(fake.detach(), y_fake)
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast(device):
            loss_g = F.softplus(-disc(fake, y_fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        sums += torch.stack([loss_d.detach().float(), loss_g.detach().float(),
                             torch.sigmoid(d_real.detach().float()).mean(), torch.sigmoid(d_fake.detach().float()).mean()])
        done = step + 1
        if done % log_every == 0 or done == recipe.steps:
            ld, lg, dx, dgz = (sums / (done - last_log)).tolist()  # the one sync per logging step
            if not (math.isfinite(ld) and math.isfinite(lg)):
                raise TrainingDivergedError(f"training of {desc} diverged (loss_d {ld}, loss_g {lg} by step {done}); "
                                            f"lower gan.lr (now {recipe.lr:g}) or change gan.beta1 / gan.batch_size")
            sums.zero_()
            last_log = done
            elapsed = spent + time.perf_counter() - t0
            history.append({"step": done, "loss_d": ld, "loss_g": lg, "d_real": dx, "d_fake": dgz,
                            "seconds": elapsed})
            bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}")
            if writer is not None:
                for k in ("loss_d", "loss_g", "d_real", "d_fake"):
                    writer.add_scalar(f"gan/{k}", history[-1][k], done)
                writer.add_image("gan/samples", sample_grid(gen, fixed, fixed_y, device), done)
            if on_log is not None:
                on_log(GanState(done, gen.state_dict(), disc.state_dict(), opt_g.state_dict(), opt_d.state_dict(),
                                batches.get_state(), latents.get_state(), list(history), elapsed))
    gen.eval()
    disc.eval()
    return history, spent + time.perf_counter() - t0


@torch.no_grad()
def sample_grid(gen: Generator, z: torch.Tensor, y: torch.Tensor | None, device: torch.device,
                nrow: int = 8) -> torch.Tensor:
    """A [C, H, W] float grid of ``gen``'s samples at ``z`` in eval mode (training mode restored)."""
    from torchvision.utils import make_grid

    was = gen.training
    gen.eval()
    with autocast(device):
        imgs = gen(z, y).float().add(1).div(2).clamp(0, 1).cpu()
    gen.train(was)
    return make_grid(imgs, nrow=nrow, padding=1, pad_value=1.0)

