"""Issue 23: the public Python API refuses bad inputs with one error naming the argument, the
problem and the fix (overconf/core/checks.py), through the public functions only: overconf.evaluate,
overconf.attacks.fit / get, overconf.metrics.*. Valid inputs give the same numbers as before."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import overconf
from overconf import metrics
from overconf.core.errors import ConfigError, InputError, InputTypeError
from overconf.core.seeding import isolated_rng

K = 3


class MLP(torch.nn.Module):
    def __init__(self, k: int = K, d: int = 5):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, k))

    def forward(self, x):
        return self.net(x)


def mlp(k: int = K, seed: int = 0) -> MLP:
    with isolated_rng(seed):
        return MLP(k)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g)
    y = torch.randint(0, K, (40,), generator=g)
    x_out = torch.randn(30, 5, generator=g)
    y_out = torch.randint(0, K, (30,), generator=g)
    return x, y, x_out, y_out


def run(data, model=None, members=None, nonmembers=None, shadow=None, **kw):
    x, y, x_out, y_out = data
    return overconf.evaluate(model if model is not None else mlp(), members if members is not None else (x, y),
                             nonmembers if nonmembers is not None else {"test": (x_out, y_out)},
                             shadow=shadow if shadow is not None else ((x, y), (x_out, y_out)),
                             attacks=kw.pop("attacks", ["max_score"]), metrics=kw.pop("metrics", {"bootstrap": 10}),
                             **kw)


# --- overconf.evaluate: labels -------------------------------------------------------------

def test_evaluate_refuses_float_labels_instead_of_truncating_them(data):
    x, y, *_ = data
    with pytest.raises(InputTypeError, match=r"members labels: must be integer class indices, got dtype "
                                             r"torch.float32.*y.long\(\)") as e:
        run(data, members=(x, y.float() + 0.7))
    assert isinstance(e.value, TypeError) and isinstance(e.value, ConfigError)


def test_evaluate_refuses_labels_outside_the_models_classes(data):
    x, y, x_out, y_out = data
    first = int(y_out[0]) + 3
    with pytest.raises(InputError, match=rf"nonmembers\['test'\] labels: 30 labels outside \[0, 3\).*e.g. {first} at "
                                         r"index 0; labels must index the model's K = 3 outputs"):
        run(data, nonmembers={"test": (x_out, y_out + 3)})
    with pytest.raises(InputError, match=r"shadow non-members labels: 1 labels outside .*e.g. -5 at index 4; -1 is "
                                         r"the only 'unlabelled' marker"):  # was treated as unlabelled
        run(data, shadow=((x, y), (x_out, torch.where(torch.arange(30) == 4, -5, y_out))))


def test_evaluate_keeps_minus_one_as_unlabelled_and_gives_no_accuracy_for_unlabelled_members(data):
    x, y, x_out, y_out = data
    labelled = run(data).frame
    unlabelled = run(data, members=(x, torch.full_like(y, -1)), nonmembers={"test": x_out}).frame
    acc = labelled.query("metric == 'accuracy' and source == 'train'")["value"].item()
    with torch.no_grad():
        assert acc == pytest.approx(float((mlp()(x).argmax(1) == y).double().mean()))
    assert unlabelled.query("attack == '-' and metric == 'accuracy'").empty  # was a train accuracy of 0
    assert not unlabelled.query("attack == 'max_score' and metric == 'fpr'").empty


# --- overconf.evaluate: models, class counts, numbers --------------------------------------

def test_evaluate_refuses_a_shadow_with_another_class_count(data):
    x, y, x_out, y_out = data
    with pytest.raises(InputError, match=r"shadow members: the shadow model's outputs: K = 4 classes, where the "
                                         r"model's outputs have K = 3"):
        run(data, shadow=(mlp(k=4), (x, y), (x_out, y_out)))


@pytest.mark.parametrize("value, kind", [(True, InputTypeError), ("2", InputTypeError), (0, InputError),
                                         (float("nan"), InputError), (-1.5, InputError)])
def test_evaluate_refuses_a_temperature_that_is_not_a_positive_number(data, value, kind):
    with pytest.raises(kind, match=r"temperature \(T of softmax\(z / T\)\)"):
        run(data, temperature=value)


def test_evaluate_names_both_shapes_when_the_inputs_do_not_fit_the_model(data):
    from overconf.models import build_model

    with isolated_rng(0):
        model = build_model("small_resnet", in_channels=1, num_classes=10, image_size=28)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.long)
    with pytest.raises(InputError, match=r"members: inputs of per-sample shape 3x32x32, but the model takes "
                                         r"1x28x28 inputs"):
        overconf.evaluate(model, (x, y), {"test": x}, shadow=((x, y), x), attacks=["max_score"])
    stem = torch.nn.Sequential(model.stem, torch.nn.Flatten(1))  # a plain module records no input shape
    with pytest.raises(InputError, match=r"members: the model failed on inputs of per-sample shape 3x32x32 "
                                         r"\(torch.float32\); its first layer Conv2d takes 1 input channel"):
        overconf.evaluate(stem, x, {"test": x}, shadow=(x, x), attacks=["max_score"])
    x5, *_ = data
    with pytest.raises(InputError, match=r"nonmembers\['noise'\]: per-sample shape 7 differs from that of "
                                         r"members \(5\)"):
        run(data, nonmembers={"noise": torch.randn(4, 7)})


def test_evaluate_refuses_integer_pixels_and_casts_float64_inputs_to_the_models_dtype(data):
    x, y, x_out, y_out = data
    with pytest.raises(InputTypeError, match=r"members inputs: inputs have dtype torch.uint8.*normalise"):
        run(data, members=((x.abs() * 50).to(torch.uint8), y))
    as_float32 = run(data).rows
    as_float64 = run(data, members=(x.double(), y), nonmembers={"test": (x_out.double(), y_out)}).rows
    assert as_float64 == as_float32  # float64 inputs of a float32 model: cast to float32 (stated rule)


class TupleOut(MLP):
    def forward(self, x):
        return self.net(x), x


class OneLogit(MLP):
    def forward(self, x):
        return self.net(x)[:, 0]


class NaNOut(MLP):
    def forward(self, x):
        z = self.net(x)
        return torch.where(torch.arange(len(x))[:, None] == 2, math.nan, z)


def test_evaluate_refuses_model_outputs_that_are_not_finite_logits(data):
    with pytest.raises(InputTypeError, match=r"members: the model returned a tuple, not a tensor of logits"):
        run(data, model=TupleOut())
    with pytest.raises(InputError, match=r"members: the model returned shape \[40\] for 40 inputs.*zeros_like"):
        run(data, model=OneLogit())
    with pytest.raises(InputError, match=r"members: the model's outputs: 1 of 40 rows of logits hold NaN or inf "
                                         r"\(first: row 2\)"):
        run(data, model=NaNOut())


def test_evaluate_refuses_empty_sets_and_arguments_of_the_wrong_kind(data):
    x, y, x_out, y_out = data
    with pytest.raises(InputError, match=r"members inputs: empty \(0 samples\)"):
        run(data, members=(x[:0], y[:0]))
    with pytest.raises(InputError, match=r"nonmembers\['test'\]: empty"):
        run(data, nonmembers={"test": x_out[:0]})
    with pytest.raises(InputTypeError, match=r"nonmembers must be a dict"):
        run(data, nonmembers=x_out)
    with pytest.raises(InputTypeError, match=r"model: expected a torch.nn.Module, got function"):
        run(data, model=lambda t: t)
    with pytest.raises(InputTypeError, match=r"attacks must be a list.*\['max_score'\]"):
        run(data, attacks="max_score")
    with pytest.raises(InputTypeError, match=r"seed: expected a number, got bool"):
        run(data, seed=True)
    with pytest.raises(ConfigError, match=r"'metrics.bootstrap' must be an integer, got True"):
        run(data, metrics={"bootstrap": True})  # the metrics: section is typed as in a study's YAML
    with pytest.raises(InputError, match=r"metrics.confidence: 2 is outside \(0, 1\)"):
        run(data, metrics={"confidence": 2})


# --- overconf.attacks on plain logits ------------------------------------------------------

@pytest.fixture(scope="module")
def logits():
    g = torch.Generator().manual_seed(3)
    return torch.randn(50, K, generator=g) * 3, torch.randn(40, K, generator=g), torch.randint(0, K, (50,), generator=g)


def test_attack_fit_refuses_empty_nan_and_non_float_logits(logits):
    z_in, z_out, _ = logits
    with pytest.raises(InputError, match=r"member_logits: empty"):
        overconf.attacks.fit("max_score", z_in[:0], z_out)
    bad = z_out.clone()
    bad[5, 1] = math.nan
    with pytest.raises(InputError, match=r"nonmember_logits: 1 of 40 rows of logits hold NaN or inf \(first: row 5\)"):
        overconf.attacks.fit("max_score", z_in, bad)
    with pytest.raises(InputTypeError, match=r"member_logits: logits must be floating point, got dtype torch.int64"):
        overconf.attacks.fit("max_score", z_in.long(), z_out)
    with pytest.raises(InputTypeError, match=r"member_logits: cannot be read as a tensor"):
        overconf.attacks.fit("max_score", [["a", "b"]], z_out)


def test_attack_fit_refuses_bad_labels_and_class_counts(logits):
    z_in, z_out, y = logits
    with pytest.raises(InputError, match=r"member_labels: expected one label per sample, shape \[50\], got \[49\]"):
        overconf.attacks.fit("max_score", z_in, z_out, y[:49])
    with pytest.raises(InputTypeError, match=r"member_labels: must be integer class indices"):
        overconf.attacks.fit("loss", z_in, z_out, y.float())
    with pytest.raises(InputError, match=r"member_labels: 1 labels outside \[0, 3\)"):
        overconf.attacks.fit("loss", z_in, z_out, torch.where(torch.arange(50) == 7, 3, y))
    with pytest.raises(InputError, match=r"nonmember_logits: K = 4 classes, where member_logits have K = 3"):
        overconf.attacks.fit("max_score", z_in, torch.randn(10, 4))
    fitted = overconf.attacks.fit("loss", z_in, z_out, y, torch.full((40,), -1))  # -1: unlabelled, accepted
    with pytest.raises(InputError, match=r"logits: K = 4 classes, where the shadow outputs it was fitted on "
                                         r"have K = 3"):
        fitted.score(torch.randn(10, 4))
    with pytest.raises(InputError, match=r"logits: logits must be \[N, K\].*got shape \[10\].*zeros_like"):
        fitted.score(torch.randn(10))


def test_attack_fit_checks_log_probabilities_and_the_seed(logits):
    z_in, z_out, _ = logits
    with pytest.raises(InputError, match=r"member_logits: log_probs=True but the rows are not normalised"):
        overconf.attacks.fit("max_score", z_in, z_out, log_probs=True)
    lp_in, lp_out = torch.log_softmax(z_in.double(), 1), torch.log_softmax(z_out.double(), 1)
    lp_in[0] = torch.tensor([0.0, -math.inf, -math.inf])  # p = (1, 0, 0): -inf is a valid log-probability
    a = overconf.attacks.fit("max_score", lp_in, lp_out, log_probs=True)
    assert a.score(lp_in)[0] == 0.0
    with pytest.raises(InputError, match=r"member_logits: .*NaN or inf"):
        overconf.attacks.fit("max_score", torch.where(torch.arange(50)[:, None] == 0, math.inf, z_in), z_out)
    with pytest.raises(InputTypeError, match=r"seed: expected a number, got bool"):
        overconf.attacks.fit("max_score", z_in, z_out, seed=True)
    with pytest.raises(InputTypeError, match=r"generator: expected a torch.Generator, got int"):
        overconf.attacks.fit("max_score", z_in, z_out, generator=3)


# --- overconf.metrics ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def scores():
    g = torch.Generator().manual_seed(4)
    return torch.randn(60, generator=g).double() + 1, torch.randn(50, generator=g).double()


ROC_METRICS = [metrics.binary_auroc, metrics.binary_roc, metrics.binary_tpr_at_fpr, metrics.binary_fpr_at_tpr]


@pytest.mark.parametrize("fn", ROC_METRICS, ids=lambda f: f.__name__)
def test_roc_metrics_refuse_empty_nan_misshapen_and_non_numeric_scores(fn, scores):
    s_in, s_out = scores
    with pytest.raises(InputError, match=r"nonmember_scores: empty \(0 samples\)"):
        fn(s_in, s_out[:0])
    with pytest.raises(InputError, match=r"member_scores: 1 of 60 scores are NaN \(first at index 3\)"):
        fn(torch.where(torch.arange(60) == 3, math.nan, s_in), s_out)
    with pytest.raises(InputError, match=r"member_scores: expected one score per sample, shape \[N\], got \[60, 1\]"):
        fn(s_in[:, None], s_out)
    with pytest.raises(InputTypeError, match=r"nonmember_scores: cannot be read as a tensor"):
        fn(s_in, ["x", "y"])
    with pytest.raises(InputTypeError, match=r"nonmember_scores: complex"):
        fn(s_in, s_out.to(torch.complex128))


def test_infinite_scores_count_as_the_largest_finite_values(scores):
    from sklearn.metrics import roc_auc_score

    s_in, s_out = scores
    s_in = torch.where(torch.arange(60) < 5, math.inf, s_in)
    s_out = torch.where(torch.arange(50) < 2, -math.inf, s_out)
    big = np.finfo(np.float64).max
    y = np.r_[np.ones(60), np.zeros(50)]
    expected = roc_auc_score(y, np.nan_to_num(np.r_[s_in, s_out], posinf=big, neginf=-big))
    assert metrics.binary_auroc(s_in, s_out) == pytest.approx(expected)  # was a raw scikit-learn error


def test_rate_metrics_refuse_empty_scores_and_bad_numbers(scores):
    s_in, s_out = scores
    with pytest.raises(InputError, match=r"nonmember_scores: empty"):
        metrics.binary_fpr(s_out[:0], 0.0)  # was (nan, nan, nan)
    with pytest.raises(InputError, match=r"member_scores: 1 of 60 scores are NaN"):
        metrics.binary_tpr(torch.where(torch.arange(60) == 0, math.nan, s_in), 0.0)  # was counted as not flagged
    with pytest.raises(InputTypeError, match=r"threshold: expected a number, got bool"):
        metrics.binary_fpr(s_out, True)
    with pytest.raises(InputError, match=r"max_fpr: 1.5 is outside \[0, 1\]"):
        metrics.binary_tpr_at_fpr(s_in, s_out, max_fpr=1.5)
    with pytest.raises(InputError, match=r"confidence: 95 is outside \(0, 1\)"):
        metrics.binary_fpr(s_out, 0.0, confidence=95)
    assert metrics.binary_fpr(s_out, math.inf)[0] == 0.0  # an infinite threshold flags nothing


def test_clopper_pearson_interval_refuses_impossible_counts():
    from scipy.stats import binomtest

    with pytest.raises(InputError, match=r"k: k = 5 successes out of n = 3 trials.*0 <= k <= n"):
        metrics.clopper_pearson_interval(5, 3)  # was (nan, 1)
    with pytest.raises(InputError, match=r"k: a count must be >= 0, got -1"):
        metrics.clopper_pearson_interval(-1, 3)
    with pytest.raises(InputError, match=r"n: a count must be >= 0, got -3"):
        metrics.clopper_pearson_interval(0, -3)
    with pytest.raises(InputTypeError, match=r"k: expected a whole number, got 1.5"):
        metrics.clopper_pearson_interval(1.5, 3)
    with pytest.raises(InputTypeError, match=r"n: expected a number, got bool"):
        metrics.clopper_pearson_interval(1, True)
    with pytest.raises(InputError, match=r"clopper_pearson: counts must be whole numbers with 0 <= k <= n"):
        metrics.clopper_pearson(np.array([1, 4]), np.array([3, 3]))
    ci = binomtest(2, 9).proportion_ci(0.95, method="exact")  # whole numbers of any integer type still work
    for k, n in ((2, 9), (np.int64(2), np.int32(9)), (2.0, 9.0), (torch.tensor(2), torch.tensor(9))):
        assert metrics.clopper_pearson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert all(math.isnan(v) for v in metrics.clopper_pearson_interval(0, 0))  # documented: nan for n = 0


@pytest.mark.parametrize("fn", [metrics.multiclass_calibration_error, metrics.multiclass_overconfidence_error],
                         ids=lambda f: f.__name__)
def test_calibration_metrics_refuse_logits_bad_labels_and_bins(fn):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(30, K, generator=g) * 2
    p, y = torch.softmax(z, 1), torch.randint(0, K, (30,), generator=g)
    with pytest.raises(InputError, match=r"probs: rows are not probability vectors.*softmax"):
        fn(z, y)
    with pytest.raises(InputError, match=r"labels: expected one label per sample, shape \[30\], got \[29\]"):
        fn(p, y[:29])
    with pytest.raises(InputTypeError, match=r"labels: must be integer class indices"):
        fn(p, y.float())
    with pytest.raises(InputError, match=r"labels: 1 labels outside \[0, 3\), e.g. -1"):
        fn(p, torch.where(torch.arange(30) == 0, -1, y))  # every sample needs its true label here
    with pytest.raises(InputTypeError, match=r"n_bins: expected a number, got bool"):
        fn(p, y, n_bins=True)
    with pytest.raises(InputError, match=r"probs: empty"):
        fn(p[:0], y[:0])
    assert fn(p.numpy(), y.numpy()) == fn(p, y)  # numpy arrays are accepted


def test_membership_metrics_refuse_empty_and_nan_scores(scores):
    s_in, s_out = scores
    with pytest.raises(InputError, match=r"scores_out: empty"):
        metrics.membership_metrics(s_in, s_out[:0], 0.0, n_boot=10)  # was a ZeroDivisionError
    with pytest.raises(InputError, match=r"scores_in: 1 of 60 scores are NaN"):
        metrics.membership_metrics(torch.where(torch.arange(60) == 1, math.nan, s_in), s_out, 0.0, n_boot=10)
