"""Training: one trainer for classifiers, shadows and reference models, single and batched.

- :mod:`.step`: the loss (cross-entropy with label smoothing), the optimizer, the step and the
  divergence checks, defined once;
- :mod:`.loop`: :func:`train_classifier`, one model on device-resident tensors;
- :mod:`.batched`: :func:`train_batched`, G models of one architecture at once (torch.func
  stacked parameters under vmap), with the same hooks, loss function object and step;
- :mod:`.hooks`: :class:`TrainingHooks`, what a training-time defense changes: (a) how a batch is
  sampled, (b) how the step's gradient is formed, (c) the loss, (d) when to stop; the defaults are
  plain training and reproduce the models trained before hooks existed bit for bit;
- :mod:`.jobs`: :class:`ClassifierJob` (what determines a model, its cache key) and
  :func:`load_or_train` (cached, locked, resumable).

How a defense plugs in (a subclass of :class:`TrainingHooks`, set as ``ClassifierJob.hooks``;
its :meth:`~TrainingHooks.describe` enters the model's key):

- **DP-SGD** (Abadi et al. 2016). ``batches``: Poisson sampling, each of the n points joins a batch
  with probability q = batch_size / n, drawn from the given seeded generator (variable batch
  sizes). ``gradient``: per-sample gradients, either with torch.func
  (``vmap(grad(loss_of_one_sample))`` over ``functional_call`` of the model the hook was built
  with, on ``batch.x`` / ``batch.y``) or with opacus (a ``GradSampleModule`` fills
  ``p.grad_sample`` during ``loss.backward()``); clip each sample's gradient to total norm C, sum,
  add N(0, sigma^2 C^2) noise from the hook's own seeded generator, divide by the expected batch
  size q n, and write the result into ``p.grad``. The privacy accountant (e.g. opacus' RDP
  accountant) reads q, sigma and the number of steps. Batched: ``group_batches`` gives each model
  its Poisson batch, padded with -1 rows to the step's largest (``Batch.mask``), and ``gradient``
  vmaps over the models and the samples through ``Batch.functional``. ``prepare_model``: BatchNorm
  -> GroupNorm (opacus' ``ModuleValidator.fix``).
- **Early stopping.** ``stop(state)``: the hook holds a validation split (never evaluation
  non-members), evaluates the model of ``state`` (``TrainState.model`` is the live state dict)
  after each epoch, keeps the best weights, and returns True after ``patience`` epochs without
  improvement (copying the best weights back into ``state.model`` first).
- **Adversarial regularisation** (Nasr et al. 2018): ``gradient`` first trains an inference model k
  steps on the batch against a reference batch, then backpropagates CE + lambda * mean log h on the
  batch (``loss`` keeps the step's logits for it); single loop only.
"""
from .batched import GroupState, has_batchnorm, train_batched
from .hooks import DEFAULT_HOOKS, Batch, TrainingHooks
from .jobs import ClassifierJob, TrainedClassifier, load_or_train
from .loop import TrainState, train_classifier
from .step import (DIVERGED_LOSS, SmoothedCrossEntropy, check_diverged, check_finite, classification_loss,
                   divergence_error, make_optimizer, optimizer_step)

__all__ = ["Batch", "ClassifierJob", "DEFAULT_HOOKS", "DIVERGED_LOSS", "GroupState", "SmoothedCrossEntropy",
           "TrainState", "TrainedClassifier", "TrainingHooks", "check_diverged", "check_finite",
           "classification_loss", "divergence_error", "has_batchnorm", "load_or_train", "make_optimizer",
           "optimizer_step", "train_batched", "train_classifier"]
