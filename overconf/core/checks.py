"""What the public Python API accepts: one rule per kind of argument, each refusing a bad value
with one error that names the argument, the problem and the fix (docs/python-api-inputs.md).

The rules guard the API boundary only: ``overconf.evaluate`` (overconf/byo.py), the attacks on
plain tensors (overconf/attacks/tensors.py) and the functional metrics
(overconf/metrics/functional.py, ``membership_metrics``, ``clopper_pearson``). The study passes
tensors it built itself and is not re-checked. Wrong type or dtype: :class:`InputTypeError`
(a ``TypeError``); wrong shape, size or range: :class:`InputError` (a ``ValueError``); both are
:class:`~overconf.core.errors.ConfigError`\\ s.

- a number is an int or a float (numpy scalars and one-element tensors too), never a bool;
- a count is a whole number >= 0;
- labels are integer class indices y in [0, K) of the model's K outputs, -1 marking an input
  without a task label (no other negative value); float labels are refused, never rounded;
- logits z are floating [N, K], N >= 1, K >= 2, finite; log-probabilities (``log_probs=True``) are
  <= 0 with each row's logsumexp = 0, -inf allowed (p = 0), NaN and +inf refused;
- probabilities p are floating [N, K] in [0, 1] with each row summing to 1;
- scores are real numbers [N], N >= 1, no NaN (+-inf allowed);
- model inputs are floating [N, ...], N >= 1 (integer pixels are refused: normalise them as the
  model was trained); every input set of one model has the same per-sample shape;
- a model's output on a batch of B inputs is one tensor of logits [B, K], K >= 2.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NoReturn

import numpy as np
import torch

from overconf.core.errors import InputError, InputTypeError

LOG_PROB_TOLERANCE = 1e-4
"""|logsumexp_k lp_k| allowed for log-probabilities (float32 log_softmax is within ~1e-6)"""
PROB_TOLERANCE = 1e-3
"""|sum_k p_k - 1| allowed for probabilities (float32 softmax is within ~1e-6)"""


def fail(name: str, problem: str, fix: str, kind: type[InputError] = InputError) -> NoReturn:
    raise kind(f"{name}: {problem}; {fix}")


def shape_text(shape) -> str:
    """``[N, 3, 32, 32]``-style text of a shape."""
    return "[" + ", ".join(map(str, shape)) + "]"


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           open_low: bool = False, open_high: bool = False, integer: bool = False,
           finite: bool = True) -> float | int:
    """A real number (int / float, numpy scalar, one-element tensor) in the given range; a bool is
    refused (``temperature=True`` is not T = 1), so is NaN, and +-inf unless ``finite=False``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        fail(name, f"expected a number, got {type(value).__name__} {value!r}",
             "pass an int or a float (a bool is not a number here)", InputTypeError)
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        fail(name, f"got {v}", "pass a finite number")
    if integer and v != int(v):
        fail(name, f"expected a whole number, got {v}", f"pass an int, e.g. {int(v)}", InputTypeError)
    below = low is not None and (v <= low if open_low else v < low)
    above = high is not None and (v >= high if open_high else v > high)
    if below or above:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        span = f"{'(' if open_low or low is None else '['}{lo}, {hi}{')' if open_high or high is None else ']'}"
        fail(name, f"{int(v) if v.is_integer() and abs(v) < 2 ** 53 else v} is outside {span}",
             f"pass a number in {span}")
    return int(v) if integer else v


def count(value: Any, name: str) -> int:
    """A count of events or trials: a whole number >= 0."""
    v = number(value, name, integer=True)
    if v < 0:
        fail(name, f"a count must be >= 0, got {v}", "pass the number of samples (successes or trials)")
    return v


def tensor(values: Any, name: str) -> torch.Tensor:
    """A tensor, numpy array or (nested) list of real numbers as a CPU tensor; anything else
    (strings, dicts, None, complex numbers) is refused."""
    if isinstance(values, (str, bytes, dict)) or values is None:
        fail(name, f"expected a tensor or array of numbers, got {type(values).__name__}",
             "pass a torch.Tensor or a numpy array", InputTypeError)
    try:
        t = (values if isinstance(values, torch.Tensor) else torch.as_tensor(values)).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        fail(name, f"cannot be read as a tensor of numbers ({e})", "pass a torch.Tensor or a numpy array of numbers",
             InputTypeError)
    if t.dtype.is_complex:
        fail(name, f"complex dtype {t.dtype}", "pass real numbers", InputTypeError)
    return t


def non_empty(t: torch.Tensor, name: str) -> torch.Tensor:
    if len(t) == 0:
        fail(name, "empty (0 samples)", "pass at least one sample")
    return t


def scores(values: Any, name: str) -> torch.Tensor:
    """Per-sample scores [N] as float64: real numbers (bool and integer scores are numbers too),
    N >= 1, no NaN."""
    s = tensor(values, name)
    if s.ndim != 1:
        fail(name, f"expected one score per sample, shape [N], got {shape_text(s.shape)}",
             "pass a 1-D tensor (flatten it, or take the member-class column)")
    s = non_empty(s, name).double()
    nan = torch.isnan(s)
    if nan.any():
        fail(name, f"{int(nan.sum())} of {len(s)} scores are NaN (first at index {int(nan.nonzero()[0])})",
             "remove those samples or fix what produced them")
    return s


def labels(values: Any, name: str, n: int) -> torch.Tensor:
    """Labels [n] as int64: an integer dtype (float labels are refused, never rounded)."""
    y = tensor(values, name)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        fail(name, f"must be integer class indices, got dtype {y.dtype} (they would be truncated)",
             "pass y.long() if they are whole numbers, or the class indices themselves", InputTypeError)
    if tuple(y.shape) != (n,):
        fail(name, f"expected one label per sample, shape [{n}], got {shape_text(y.shape)}",
             f"pass {n} labels, one per sample")
    return y.long()


def label_range(y: torch.Tensor, name: str, k: int, *, unlabelled: bool = True) -> torch.Tensor:
    """Every label indexes one of the model's K outputs: 0 <= y < K, or y = -1 (no task label)
    where ``unlabelled``."""
    low = -1 if unlabelled else 0
    bad = (y < low) | (y >= k)
    if bad.any():
        i = int(bad.nonzero()[0])
        allowed = f"[0, {k}) (or -1 for a sample without a label)" if unlabelled else f"[0, {k})"
        fix = "-1 is the only 'unlabelled' marker" if unlabelled and int(y[i]) < -1 else \
            f"labels must index the model's K = {k} outputs (map them to 0..{k - 1})"
        fail(name, f"{int(bad.sum())} labels outside {allowed}, e.g. {int(y[i])} at index {i}", fix)
    return y


def logits(values: Any, name: str, *, log_probs: bool = False) -> torch.Tensor:
    """Logits [N, K] (or log-probabilities with ``log_probs``): floating, N >= 1, K >= 2, finite
    (log-probabilities: <= 0, -inf allowed, each row normalised)."""
    z = tensor(values, name)
    what = "log-probabilities" if log_probs else "logits"
    if z.ndim != 2:
        fail(name, f"{what} must be [N, K] (N samples, K classes), got shape {shape_text(z.shape)}",
             "pass one row of K >= 2 class outputs per sample" + (
                 "; a single logit z per sample: torch.stack([torch.zeros_like(z), z], 1)" if z.ndim == 1 else ""))
    if not z.dtype.is_floating_point:
        fail(name, f"{what} must be floating point, got dtype {z.dtype} (labels or predicted classes?)",
             f"pass the model's {what} as a float tensor", InputTypeError)
    non_empty(z, name)
    if z.shape[1] < 2:
        fail(name, f"{what} have K = {z.shape[1]} class", "pass K >= 2 classes; a single logit z per sample: "
             "torch.cat([torch.zeros_like(z), z], 1) (softmax = sigmoid(z))")
    bad = torch.isnan(z) | (z == math.inf)
    if not log_probs:
        bad |= z == -math.inf
    if bad.any():
        row = int(bad.nonzero()[0, 0])
        fail(name, f"{int(bad.any(1).sum())} of {len(z)} rows of {what} hold NaN or inf (first: row {row})",
             "fix the model or drop those samples" + ("" if log_probs else " (-inf is allowed only in log_probs=True)"))
    if log_probs:
        lse = torch.logsumexp(z.double(), 1).abs()
        if (z > LOG_PROB_TOLERANCE).any() or (lse > LOG_PROB_TOLERANCE).any():
            row = int(lse.argmax())
            fail(name, f"log_probs=True but the rows are not normalised log-probabilities "
                       f"(|logsumexp| = {float(lse[row]):.3g} at row {row})", "pass logits without log_probs=True")
    return z


def probabilities(values: Any, name: str) -> torch.Tensor:
    """Predictive probabilities [N, K]: floating, N >= 1, in [0, 1], each row summing to 1."""
    p = tensor(values, name)
    if p.ndim != 2 or not p.dtype.is_floating_point:
        fail(name, f"expected probabilities [N, K] as floats, got shape {shape_text(p.shape)} of {p.dtype}",
             "pass softmax(logits, 1)", InputTypeError if p.ndim == 2 else InputError)
    non_empty(p, name)
    sums = p.double().sum(1)
    if not bool(((p >= 0) & (p <= 1)).all()) or bool(((sums - 1).abs() > PROB_TOLERANCE).any()):
        fail(name, "rows are not probability vectors (values in [0, 1] summing to 1)",
             "pass softmax(logits, 1), not the logits")
    return p


def same_classes(k: int, name: str, k_ref: int, ref_name: str) -> None:
    """Two output sets describe the same K classes."""
    if k != k_ref:
        fail(name, f"K = {k} classes, where {ref_name} have K = {k_ref}",
             "pass outputs of models trained on the same classes (same K)")


def model_inputs(values: Any, name: str) -> torch.Tensor:
    """A model's inputs [N, ...]: floating (integer pixels are refused: they need the model's
    normalisation first), N >= 1."""
    if not isinstance(values, (torch.Tensor, np.ndarray)):
        fail(name, f"expected a tensor of model inputs, got {type(values).__name__}",
             "pass a torch.Tensor x or a pair (x, labels)", InputTypeError)
    x = values if isinstance(values, torch.Tensor) else tensor(values, name)
    if x.ndim == 0:
        fail(name, "a 0-d tensor is not a set of inputs", "pass inputs [N, ...]")
    non_empty(x, name)
    if not x.dtype.is_floating_point:
        fail(name, f"inputs have dtype {x.dtype} (raw pixels?); the model takes normalised float inputs",
             "convert and normalise them as the model was trained, e.g. (x.float() / 255 - mean) / std",
             InputTypeError)
    return x


def same_sample_shapes(sets: dict[str, torch.Tensor]) -> None:
    """Every input set of one model has the same per-sample shape (the first set's)."""
    (ref_name, ref), *others = sets.items()
    for name, x in others:
        if x.shape[1:] != ref.shape[1:]:
            fail(name, f"per-sample shape {sample_text(x)} differs from that of {ref_name} ({sample_text(ref)})",
                 "pass every input set of a model in the shape it was trained on")


def module(value: Any, name: str) -> torch.nn.Module:
    """A model is a torch.nn.Module (it is put in eval mode while it is queried)."""
    if not isinstance(value, torch.nn.Module):
        fail(name, f"expected a torch.nn.Module, got {type(value).__name__}",
             "pass the trained model (wrap a function in an nn.Module whose forward calls it)", InputTypeError)
    return value


def model_input_dtype(model: torch.nn.Module, default: torch.dtype) -> torch.dtype:
    """The dtype floating inputs are cast to: the model's first floating-point parameter's (or
    buffer's), e.g. float32 for overconf's models; ``default`` for a model without any."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return default


def sample_text(x: torch.Tensor) -> str:
    """``3x32x32``: a per-sample shape."""
    return "x".join(map(str, x.shape[1:])) or "scalar"


def model_shape(x: torch.Tensor, name: str, model: torch.nn.Module) -> None:
    """Inputs of the per-sample shape a model was built for, where it records one
    (``input_shape``: overconf's models, C x H x W)."""
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        fail(name, f"inputs of per-sample shape {sample_text(x)}, but the model takes "
                   f"{'x'.join(map(str, expected))} inputs", "pass inputs of the shape it was trained on "
                   "(resize them, or convert their channels, as its training data)")


LAYERS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)


def first_layer(model: torch.nn.Module, x: torch.Tensor) -> str:
    """What the first convolution or linear layer the model calls on ``x`` takes, e.g. ``its
    first layer Conv2d takes 1 input channel (1xHxW inputs)``; empty if it calls none."""
    called: list[torch.nn.Module] = []
    hooks = [layer.register_forward_pre_hook(lambda module, args: called.append(module))
             for layer in model.modules() if isinstance(layer, LAYERS)]
    try:
        model(x)
    except Exception:  # the failure being reported; only the first layer called matters
        pass
    finally:
        for h in hooks:
            h.remove()
    if not called:
        return ""
    m = called[0]
    if isinstance(m, torch.nn.Linear):
        return f"its first layer Linear takes {m.in_features} input features"
    c, dims = m.in_channels, {torch.nn.Conv1d: "xL", torch.nn.Conv2d: "xHxW"}.get(type(m), "xDxHxW")
    return f"its first layer {type(m).__name__} takes {c} input channel{'s' * (c != 1)} ({c}{dims} inputs)"


def model_outputs(out: Any, name: str, n: int) -> torch.Tensor:
    """A model's output on a batch of n inputs: one tensor of logits [n, K], K >= 2."""
    if not isinstance(out, torch.Tensor):
        fail(name, f"the model returned a {type(out).__name__}, not a tensor of logits [N, K]",
             "wrap it in an nn.Module whose forward returns only the logits (e.g. model(x)[0])", InputTypeError)
    if out.ndim != 2 or out.shape[0] != n:
        fail(name, f"the model returned shape {shape_text(out.shape)} for {n} inputs; logits [{n}, K] are needed",
             "return one row of K >= 2 logits per input" + (
                 "; a single logit z per input: torch.stack([torch.zeros_like(z), z], 1)" if out.ndim == 1 else ""))
    return out
