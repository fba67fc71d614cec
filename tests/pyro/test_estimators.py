import dataclasses
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import pyro_redge
from pyro_redge._math import softmax_vjp
from tests import cases

redge = pytest.importorskip("redge")
reinmax = pytest.importorskip("reinmax")


def make(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(pyro_redge, name)(**kwargs)


def counts_of(samples):
    return samples.reshape(-1, samples.shape[-1]).sum(0).cpu().double().numpy()


def chi_square_pvalue(counts, probs):
    expected = probs * counts.sum()
    return stats.chisquare(counts, expected).pvalue


def uniform_selecting(probs, index):
    """The inverse-CDF uniform that selects category ``index`` (..., 1): the midpoint of its cell."""
    cdf = probs.cumsum(-1)
    return (cdf.gather(-1, index) - 0.5 * probs.gather(-1, index)) / cdf[..., -1:]


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_estimators_are_immutable_and_hashable(estimator_id):
    estimator = make(estimator_id)
    assert estimator == make(estimator_id)
    assert hash(estimator) == hash(make(estimator_id))
    field = dataclasses.fields(estimator)[0].name if dataclasses.fields(estimator) else "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(estimator, field, 1)


@pytest.mark.parametrize("name, kwargs, argument", cases.BAD_ESTIMATOR_ARGUMENTS)
def test_bad_hyperparameters_name_the_argument(name, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        getattr(pyro_redge, name)(**kwargs)


def test_integer_logits_are_rejected():
    with pytest.raises(ValueError, match="logits"):
        pyro_redge.StraightThrough()(torch.zeros(3, 4, dtype=torch.long))


@pytest.mark.parametrize("estimator_id", cases.EXACT_LAW)
def test_exact_estimators_sample_the_categorical_law(estimator_id, device):
    torch.manual_seed(0)
    logits = torch.tensor(cases.LAW_LOGITS, device=device).expand(cases.LAW_DRAWS, -1)
    samples = make(estimator_id)(logits)
    probs = np.exp(cases.LAW_LOGITS)
    probs /= probs.sum()
    assert chi_square_pvalue(counts_of(samples), probs) > cases.FALSE_ALARM


def _reference_call(reference, logits, kwargs):
    if reference == "reindge":
        return redge.SAMPLERS["reindge"](logits, n_steps=kwargs["num_steps"], t_1=kwargs["t1"])
    return getattr(redge, reference)(logits, kwargs["num_steps"], kwargs["t1"])


def _reference_with_noise(reference, logits, kwargs, gaussian, sample):
    """The reference ReDGE fed our Gaussian noise and our hard sample (its Gumbel draw replaced)."""
    ddim, reindge = sys.modules["redge.ddim"], sys.modules["redge.reindge"]

    def randn(*args, requires_grad=False, **_):
        return gaussian.clone().requires_grad_(requires_grad)

    def hard(probs):
        return sample.detach().to(probs.dtype)

    with (
        mock.patch.object(torch, "randn", randn),
        mock.patch.object(ddim, "sample_one_hot_gumbel", hard),
        mock.patch.object(reindge, "sample_one_hot_gumbel", hard),
    ):
        return _reference_call(reference, logits, kwargs)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("setting", list(cases.REDGE_SETTINGS))
def test_redge_gradient_equals_the_reference_for_the_same_noise(setting, dtype, tolerance, device):
    kwargs, reference = cases.REDGE_SETTINGS[setting]
    torch.manual_seed(1)
    logits = (2 * torch.randn(6, 3, 10, dtype=dtype, device=device)).requires_grad_()
    cotangent = torch.randn(6, 3, 10, dtype=dtype, device=device)
    estimator = pyro_redge.ReDGE(**kwargs)
    gaussian, uniform = estimator.sample_noise(logits)
    sample = estimator.apply(logits, gaussian, uniform)
    (ours,) = torch.autograd.grad((sample * cotangent).sum(), logits)

    reference_logits = logits.detach().clone().requires_grad_()
    reference_sample = _reference_with_noise(reference, reference_logits, kwargs, gaussian, sample)
    (theirs,) = torch.autograd.grad((reference_sample * cotangent).sum(), reference_logits)
    assert torch.equal(sample, reference_sample.detach())
    torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("setting", list(cases.REDGE_SETTINGS))
def test_redge_law_matches_the_reference_and_its_bias_is_recorded(setting, report, device):
    kwargs, reference = cases.REDGE_SETTINGS[setting]
    torch.manual_seed(2)
    logits = torch.tensor(cases.LAW_LOGITS, dtype=torch.float32, device=device)
    logits = logits.expand(cases.LAW_DRAWS, -1)
    ours = counts_of(pyro_redge.ReDGE(**kwargs)(logits))
    theirs = counts_of(_reference_call(reference, logits.clone().requires_grad_(), kwargs).detach())
    # Two-sample chi-square (homogeneity) test: the two laws are the same.
    assert stats.chi2_contingency(np.stack([ours, theirs])).pvalue > cases.FALSE_ALARM
    target = np.exp(cases.LAW_LOGITS) / np.exp(cases.LAW_LOGITS).sum()
    bias_ours = cases.total_variation(ours / ours.sum(), target)
    bias_theirs = cases.total_variation(theirs / theirs.sum(), target)
    report(
        f"torch ReDGE {kwargs}: TV(hard-sample law, Cat(softmax θ)) = {bias_ours:.4f} "
        f"(reference {bias_theirs:.4f}; Monte-Carlo floor ≈ 0.002 at {cases.LAW_DRAWS} draws)"
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_straight_through_gradient_is_the_softmax_jacobian(dtype, device):
    torch.manual_seed(3)
    logits = torch.randn(5, 4, 7, dtype=dtype, device=device).requires_grad_()
    cotangent = torch.randn(5, 4, 7, dtype=dtype, device=device)
    sample = pyro_redge.StraightThrough()(logits)
    (ours,) = torch.autograd.grad((sample * cotangent).sum(), logits)
    _, vjp = torch.func.vjp(lambda x: torch.softmax(x, -1), logits.detach())
    torch.testing.assert_close(ours, vjp(cotangent)[0], rtol=0, atol=4 * torch.finfo(dtype).eps)


def test_gumbel_softmax_gradient_is_that_of_the_relaxed_sample(device):
    torch.manual_seed(4)
    logits = torch.randn(5, 7, dtype=torch.float64, device=device).requires_grad_()
    cotangent = torch.randn(5, 7, dtype=torch.float64, device=device)
    estimator = pyro_redge.GumbelSoftmax(temperature=0.7)
    (gumbel,) = estimator.sample_noise(logits)
    sample = estimator.apply(logits, gumbel)
    (ours,) = torch.autograd.grad((sample * cotangent).sum(), logits)
    perturbed = logits.detach() + gumbel
    assert torch.equal(sample.argmax(-1), perturbed.argmax(-1))
    _, vjp = torch.func.vjp(lambda x: torch.softmax((x + gumbel) / 0.7, -1), logits.detach())
    torch.testing.assert_close(ours, vjp(cotangent)[0], rtol=1e-12, atol=1e-14)


def reinmax_closed_form(logits, sample, cotangent, temperature):
    """ReinMax's surrogate for a given hard sample, written from the paper's formula."""
    probs = torch.softmax(logits, -1)
    midpoint = 0.5 * (torch.softmax(logits / temperature, -1) + sample)
    return softmax_vjp(midpoint, 2 * cotangent) - softmax_vjp(probs, 0.5 * cotangent)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reinmax_equals_the_reference_and_its_closed_form(temperature, device):
    torch.manual_seed(5)
    logits = torch.randn(64, 6, dtype=torch.float64, device=device)
    cotangent = torch.randn(64, 6, dtype=torch.float64, device=device)
    reference_logits = logits.clone().requires_grad_()
    reference_sample, _ = reinmax.reinmax(reference_logits, temperature)
    (theirs,) = torch.autograd.grad((reference_sample * cotangent).sum(), reference_logits)

    ours_logits = logits.clone().requires_grad_()
    uniform = uniform_selecting(torch.softmax(logits, -1), reference_sample.argmax(-1, keepdim=True))
    sample = pyro_redge.ReinMax(temperature).apply(ours_logits, uniform)
    (ours,) = torch.autograd.grad((sample * cotangent).sum(), ours_logits)
    assert torch.equal(sample, reference_sample.detach())
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    closed = reinmax_closed_form(logits, sample, cotangent, temperature)
    torch.testing.assert_close(ours, closed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reinmax_mean_surrogate_matches_enumeration(temperature, device):
    torch.manual_seed(6)
    K, draws = 5, 100_000
    logits = torch.randn(K, dtype=torch.float64, device=device)
    cotangent = torch.randn(K, dtype=torch.float64, device=device)
    probs = torch.softmax(logits, -1)
    per_category = torch.stack(
        [reinmax_closed_form(logits, torch.eye(K, dtype=logits.dtype, device=device)[k], cotangent, temperature) for k in range(K)]
    )
    exact_mean = probs @ per_category
    if temperature == 1.0:
        # At τ = 1, E_D[2 J(π½) − ½ J(π)] = J(π): unbiased for linear functions.
        torch.testing.assert_close(exact_mean, softmax_vjp(probs, cotangent), rtol=1e-12, atol=1e-14)

    batch = logits.expand(draws, K).clone().requires_grad_()
    sample = pyro_redge.ReinMax(temperature)(batch)
    (per_draw,) = torch.autograd.grad((sample * cotangent).sum(), batch)
    mean, std = per_draw.mean(0), per_draw.std(0)
    # |z| < 4.4 per coordinate: two-sided false alarm 1e-5 each, 5e-5 over the K coordinates.
    z = (mean - exact_mean) / (std / draws**0.5 + 1e-300)
    assert z.abs().max() < 4.4


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_values_are_bitwise_one_hot_in_every_dtype(estimator_id, dtype, device):
    torch.manual_seed(7)
    logits = (3 * torch.randn(500, 9, device=device)).to(dtype).requires_grad_()
    sample = make(estimator_id)(logits)
    assert sample.dtype == dtype and sample.shape == logits.shape
    assert bool(((sample == 0) | (sample == 1)).all()) and bool((sample.sum(-1) == 1).all())
    (grad,) = torch.autograd.grad((sample * torch.randn_like(sample)).sum(), logits)
    assert grad.dtype == dtype and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_extreme_and_masked_logits(estimator_id, device):
    torch.manual_seed(8)
    logits = torch.tensor([1e4, -1e4, 0.0, -torch.inf, 3.0, -torch.inf], device=device)
    logits = logits.expand(4000, -1).clone().requires_grad_()
    sample = make(estimator_id)(logits)
    assert bool(((sample == 0) | (sample == 1)).all()) and bool((sample.sum(-1) == 1).all())
    assert sample[:, [3, 5]].sum() == 0, "a masked category was sampled"
    if estimator_id in cases.EXACT_LAW:
        assert bool((sample[:, 0] == 1).all())
    (grad,) = torch.autograd.grad((sample * torch.randn_like(sample)).sum(), logits)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_expanded_and_batched_logits(estimator_id, device):
    """Non-contiguous (expanded) logits with several batch axes: the reference reinmax fails here."""
    base = torch.randn(3, 1, 5, device=device, requires_grad=True)
    logits = base.expand(3, 4, 5)
    sample = make(estimator_id)(logits)
    assert sample.shape == (3, 4, 5) and bool((sample.sum(-1) == 1).all())
    (grad,) = torch.autograd.grad((sample * torch.randn_like(sample)).sum(), base)
    assert grad.shape == base.shape and bool(torch.isfinite(grad).all())


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    batch_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    num_categories=st.integers(1, 12),
    estimator_id=st.sampled_from(list(cases.ESTIMATORS)),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
)
def test_one_hot_for_any_shape(batch_shape, num_categories, estimator_id, scale):
    logits = scale * torch.randn(*batch_shape, num_categories)
    sample = make(estimator_id)(logits)
    assert sample.shape == logits.shape
    assert bool(((sample == 0) | (sample == 1)).all()) and bool((sample.sum(-1) == 1).all())


# ST and ReinMax (τ = 1) are unbiased for functions linear in the one-hot sample; ReinMax, a
# trapezoidal (Heun) rule, is also exact for quadratic ones.
UNBIASED = {("linear", "straight_through"), ("linear", "reinmax"), ("quadratic", "reinmax")}


def test_gradient_quality_against_enumeration(report, device):
    """Mean surrogate gradient of each estimator vs the exact gradient of E[f(D)], by enumeration,
    for a linear and a nonlinear f; ST and ReinMax (τ = 1) must be unbiased on the linear one."""
    torch.manual_seed(9)
    K, draws = 6, 50_000
    logits = torch.randn(K, dtype=torch.float64, device=device)
    weights = torch.randn(K, dtype=torch.float64, device=device)
    functions = {
        "linear": lambda d: d @ weights,
        "quadratic": lambda d: (d @ weights - 0.5) ** 2,
    }
    eye = torch.eye(K, dtype=torch.float64, device=device)
    for fname, f in functions.items():
        exact = torch.func.grad(lambda x: torch.softmax(x, -1) @ f(eye))(logits)
        for estimator_id in cases.ESTIMATORS:
            batch = logits.expand(draws, K).clone().requires_grad_()
            (per_draw,) = torch.autograd.grad(f(make(estimator_id)(batch)).sum(), batch)
            mean = per_draw.mean(0)
            bias = (mean - exact).norm().item()
            cosine = torch.nn.functional.cosine_similarity(mean, exact, dim=0).item()
            variance = per_draw.var(0).sum().item()
            report(
                f"torch {estimator_id:16s} {fname:9s}: |bias| {bias:.4f} (|∇| {exact.norm():.4f}), "
                f"cosine {cosine:.4f}, total variance {variance:.4f}"
            )
            if (fname, estimator_id) in UNBIASED:
                # 5 standard errors of the norm of the Monte-Carlo mean (false alarm < 1e-4), plus
                # rounding: ST's surrogate does not depend on the draw, so its variance is zero.
                assert bias < 5 * (variance / draws) ** 0.5 + 1e-12
