import math

import numpy as np
import pyro
import pyro.distributions as host
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

import pyro_redge
from tests import cases


def make_estimator(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(pyro_redge, name)(**kwargs)


def make_count(case, device, estimator=None, dtype=torch.float64, **extra):
    name, kwargs = cases.COUNT_CASES[case]
    tensors = {key: torch.tensor(value, dtype=dtype, device=device) for key, value in kwargs.items()}
    if estimator is not None:
        extra["estimator"] = estimator
    return getattr(pyro_redge, name)(**tensors, **extra)


def host_twin(case, device):
    name, kwargs = cases.COUNT_CASES[case]
    tensors = {key: torch.tensor(value, dtype=torch.float64, device=device) for key, value in kwargs.items()}
    return getattr(host, name)(**tensors)


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_truncation_and_exact_log_prob(case, device):
    d = make_count(case, device)
    K = d.truncation_point()
    dropped = d.dropped_mass()
    assert bool((dropped < d.tail_mass).all())
    # K is the smallest such point: one less would drop too much somewhere in the batch.
    smaller = make_count(case, device, truncation=K - 1)
    assert bool((smaller.dropped_mass() >= d.tail_mass).any())
    support = d.enumerate_support()
    assert support.shape == (K + 1,) + d.batch_shape
    grid = support[:, 0] if support.dim() > 1 else support
    expected = torch.tensor(cases.count_reference_log_pmf(case, grid.cpu().numpy()).T, device=device)
    expected = expected - torch.logsumexp(expected, -1, keepdim=True)
    ours = d.log_prob_on_grid(grid)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.exp().sum(-1), torch.ones_like(dropped), rtol=1e-12, atol=1e-12)
    # log_prob agrees with the grid on the values of each element's support.
    in_support = d.base.support.check(support)
    torch.testing.assert_close(d.log_prob(torch.where(in_support, support, 0.0))[in_support], ours.T[in_support])


@pytest.mark.parametrize("estimator_id", ["straight_through", "gumbel_softmax", "reinmax"])
@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_samples_follow_the_truncated_pmf(case, estimator_id, device):
    torch.manual_seed(0)
    d = make_count(case, device, make_estimator(estimator_id))
    samples = d.sample((cases.COUNT_DRAWS,))
    support = d.enumerate_support(expand=False).flatten()
    assert bool((samples == samples.round()).all()), "values are not integer-valued"
    log_pmf = d.log_prob_on_grid(support)
    for b in range(d.batch_shape[0]):
        counts = (samples[:, b, None] == support).sum(0).cpu().numpy().astype(float)
        assert counts.sum() == cases.COUNT_DRAWS, "a sample fell outside the truncated support"
        probs = log_pmf[b].exp().cpu().numpy()
        assert cases.pooled_chi_square_pvalue(counts, probs) > cases.FALSE_ALARM


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_redge_law_bias_on_counts_is_recorded(case, report, device):
    torch.manual_seed(1)
    d = make_count(case, device, pyro_redge.ReDGE())
    samples = d.sample((cases.COUNT_DRAWS,))
    support = d.enumerate_support(expand=False).flatten()
    probs = d.log_prob_on_grid(support).exp()
    frequencies = (samples[..., None] == support).double().mean(0)
    tv = 0.5 * (frequencies - probs).abs().sum(-1)
    report(f"torch ReDGE {case:18s}: TV(samples, truncated pmf) per batch element {np.round(tv.cpu().numpy(), 4)} ({cases.COUNT_DRAWS} draws)")


@pytest.mark.parametrize(
    "case, parameter, slope",
    [("poisson", "rate", lambda d: torch.ones_like(d.rate)), ("binomial", "probs", lambda d: d.total_count)],
)
def test_straight_through_is_exact_for_the_mean(case, parameter, slope, device):
    """For a linear test function ST's surrogate is exact: d/dλ E[N] = 1, d/dp E[N] = n, up to the
    dropped mass."""
    name, kwargs = cases.COUNT_CASES[case]
    tensors = {key: torch.tensor(value, dtype=torch.float64, device=device) for key, value in kwargs.items()}
    tensors[parameter].requires_grad_()
    d = getattr(pyro_redge, name)(**tensors, estimator=pyro_redge.StraightThrough())
    (surrogate,) = torch.autograd.grad(d.rsample((100,)).mean(0).sum(), tensors[parameter], retain_graph=True)
    (exact,) = torch.autograd.grad(d.mean.sum(), tensors[parameter])
    torch.testing.assert_close(surrogate, exact, rtol=1e-9, atol=1e-12)
    expected = slope(d)
    relative = ((surrogate - expected) / expected).abs()
    assert bool((relative < 1e-3).all()), f"{surrogate} vs {expected}"


def test_gradient_quality_on_counts_against_summation(report, device):
    """Each estimator's mean gradient of E[(N − 4)²] for N ~ Poisson(λ), vs the exact gradient by
    summation over the truncated support: bias and per-draw variance are reported."""
    torch.manual_seed(2)
    draws = 20_000
    for estimator_id in cases.ESTIMATORS:
        rate = torch.tensor(3.5, dtype=torch.float64, device=device, requires_grad=True)
        d = pyro_redge.Poisson(rate, estimator=make_estimator(estimator_id))
        support = d.enumerate_support(expand=False).flatten()
        (exact,) = torch.autograd.grad((d.log_prob(support).exp() * (support - 4) ** 2).sum(), rate)
        # One draw per copy of the rate: the per-copy gradients are the per-draw surrogates.
        copies = rate.detach().expand(draws).clone().requires_grad_()
        values = pyro_redge.Poisson(copies, estimator=make_estimator(estimator_id)).rsample()
        (per_draw,) = torch.autograd.grad(((values - 4) ** 2).sum(), copies)
        bias = per_draw.mean().item() - exact.item()
        report(
            f"torch Poisson(3.5) {estimator_id:16s} d/dλ E[(N−4)²]: mean {per_draw.mean().item():+.4f} vs exact "
            f"{exact.item():+.4f} (bias {bias:+.4f}), per-draw variance {per_draw.var().item():.3f}"
        )
        if estimator_id == "reinmax":
            # (N − 4)² is quadratic in the one-hot sample, where ReinMax (τ = 1) is unbiased:
            # within 5 standard errors (false alarm < 1e-6).
            assert abs(bias) < 5 * (per_draw.var().item() / draws) ** 0.5


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_kl_is_exact_to_the_dropped_mass(case, device):
    d = make_count(case, device)
    name, kwargs = cases.COUNT_CASES[case]
    shifted = {key: torch.tensor(value * (0.9 if key != "total_count" else 1.0), dtype=torch.float64, device=device) for key, value in kwargs.items()}
    other = getattr(pyro_redge, name)(**shifted)
    other_host = getattr(host, name)(**shifted)
    support = d.enumerate_support(expand=False).flatten()
    log_p = d.log_prob_on_grid(support)
    terms = log_p.exp() * (log_p - other.log_prob_on_grid(support))
    expected = torch.where(log_p == -torch.inf, 0.0, terms).sum(-1)
    torch.testing.assert_close(kl_divergence(d, other), expected)
    # Against the host's untruncated twin: equal up to the tail mass either side drops.
    torch.testing.assert_close(kl_divergence(d, other_host), kl_divergence(d, other), rtol=0, atol=1e-4)
    torch.testing.assert_close(kl_divergence(host_twin(case, device), other), kl_divergence(d, other), rtol=0, atol=1e-4)
    if case == "poisson":
        rate_p, rate_q = d.rate, other.rate
        closed_form = rate_p * (rate_p / rate_q).log() + rate_q - rate_p
        torch.testing.assert_close(kl_divergence(d, other), closed_form, rtol=0, atol=1e-4)


def test_count_bad_input(device):
    for build, argument in [
        (lambda: pyro_redge.Poisson(torch.tensor(-1.0)), "rate"),
        (lambda: pyro_redge.Poisson(torch.tensor(float("nan"))), "rate"),
        (lambda: pyro_redge.Binomial(torch.tensor(2.5), probs=torch.tensor(0.3)), "total_count"),
        (lambda: pyro_redge.Binomial(torch.tensor(-2.0), probs=torch.tensor(0.3)), "total_count"),
        (lambda: pyro_redge.Binomial(torch.tensor(3.0), probs=torch.tensor(1.3)), "probs"),
        (lambda: pyro_redge.Geometric(probs=torch.tensor(-0.1)), "probs"),
        (lambda: pyro_redge.NegativeBinomial(torch.tensor(-1.0), probs=torch.tensor(0.5)), "total_count"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0), tail_mass=0.0), "tail_mass"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0), tail_mass=1.0), "tail_mass"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0), truncation=-1), "truncation"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0), truncation=2.5), "truncation"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0)).log_prob(torch.tensor(1.5)), "value"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0)).log_prob(torch.tensor(-1.0)), "value"),
        (lambda: pyro_redge.Relaxed(host.Normal(0.0, 1.0)), "integer support"),
        (lambda: pyro_redge.Poisson(torch.tensor(1.0), estimator="st"), "estimator"),
    ]:
        with pytest.raises(ValueError, match=argument):
            build()


def test_relaxed_wraps_any_integer_distribution_and_expands(device):
    base = host.Binomial(torch.tensor([3.0, 7.0], device=device), probs=torch.tensor([0.2, 0.6], device=device))
    d = pyro_redge.Relaxed(base, estimator=pyro_redge.ReinMax(), truncation=None)
    assert d.truncation_point() == 7 and bool((d.dropped_mass() < 1e-12).all())
    samples = d.sample((2000,))
    assert bool((samples[:, 0] <= 3).all()), "a value beyond a batch element's total_count"
    e = pyro_redge.Poisson(torch.tensor(2.0, device=device), estimator=pyro_redge.ReinMax()).expand((3, 2))
    assert type(e) is pyro_redge.Poisson and e.batch_shape == (3, 2) and e.estimator == pyro_redge.ReinMax()
    assert e.rsample().shape == (3, 2)
    fixed = pyro_redge.Poisson(torch.tensor(2.0, device=device), truncation=4)
    expected_dropped = 1 - sum(np.exp(-2.0) * 2.0**k / math.factorial(k) for k in range(5))
    assert fixed.truncation_point() == 4
    assert fixed.dropped_mass().item() == pytest.approx(expected_dropped, rel=1e-6)


def _fit_count_guide(estimator, elbo_class, device):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float64, device=device)  # noqa: E731

    def model():
        n = pyro.sample("n", pyro_redge.Poisson(as_tensor(cases.COUNT_SVI_PRIOR_RATE), estimator=estimator))
        pyro.sample("x", host.Normal(n, cases.COUNT_SVI_SCALE), obs=as_tensor(cases.COUNT_SVI_DATA))

    def guide():
        rate = pyro.param("rate", as_tensor(cases.COUNT_SVI_PRIOR_RATE), constraint=torch.distributions.constraints.positive)
        pyro.sample("n", pyro_redge.Poisson(rate, estimator=estimator))

    optimizer = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.02 ** (1 / cases.COUNT_SVI_STEPS)})
    elbo = elbo_class(num_particles=cases.COUNT_SVI_PARTICLES, vectorize_particles=True, max_plate_nesting=0)
    svi = SVI(model, guide, optimizer, elbo)
    for _ in range(cases.COUNT_SVI_STEPS):
        svi.step()
    return pyro.param("rate").item()


@pytest.mark.parametrize(
    "estimator_id, elbo",
    [(e, "Trace_ELBO") for e in ["straight_through", "gumbel_softmax", "reinmax", "redge", "redge_rein"]]
    + [("reinmax", "TraceMeanField_ELBO")],
)
def test_svi_on_a_latent_count_reaches_the_exact_elbo_optimum(estimator_id, elbo, report, device):
    optimum = cases.count_svi_exact_optimum()
    fitted = _fit_count_guide(make_estimator(estimator_id), {"Trace_ELBO": Trace_ELBO, "TraceMeanField_ELBO": TraceMeanField_ELBO}[elbo], device)
    error = abs(fitted - optimum) / optimum
    report(f"pyro SVI {elbo:19s} {estimator_id:16s} Poisson latent: rate {fitted:.4f} vs exact-ELBO optimum {optimum:.4f} ({100 * error:.1f}%)")
    assert error < cases.COUNT_SVI_RELATIVE_ERROR_BOUND.get(estimator_id, 1.0)
