"""Count distributions (Poisson, Binomial, Geometric, NegativeBinomial, ReparameterizedDiscrete) in
both hosts: the truncation and its exact log-pmf, the law of the hard samples, pathwise
gradients, the exact KL, the registry protocol, the support searched once per instance, bad input,
and SVI on a latent count."""

import importlib
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import redge_core.support
from tests import cases

CASES = list(cases.COUNT_CASES)
# The chi-square tests below hold their false-alarm rate (cases.FALSE_ALARM = 1e-3 per batch
# element) at any number of draws, the cells being pooled to ≥ 5 expected draws; 4 000 draws keep
# the (K ≈ 700) supports of the cases affordable.
LAW_DRAWS = 4_000
# SVI runs of the estimators whose error is only reported (no bound of their own, see
# cases.COUNT_SVI_RELATIVE_ERROR_BOUND) are shorter than the asserted ones.
REPORTED_SVI_STEPS = 300
REPORTED_SVI_PARTICLES = 8


def make_estimator(backend, estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(backend.lib, name)(**kwargs)


def count_arrays(backend, case, scale=1.0):
    """The case's parameters as host arrays, all but ``total_count`` multiplied by ``scale``."""
    _, kwargs = cases.COUNT_CASES[case]
    return {key: backend.array(value * (1.0 if key == "total_count" else scale)) for key, value in kwargs.items()}


def make_count(backend, case, estimator=None, scale=1.0, **extra):
    name, _ = cases.COUNT_CASES[case]
    if estimator is not None:
        extra["estimator"] = estimator
    return getattr(backend.lib, name)(**count_arrays(backend, case, scale), **extra)


def host_twin(backend, case, scale=1.0):
    name, _ = cases.COUNT_CASES[case]
    return getattr(backend.dist, name)(**count_arrays(backend, case, scale))


def registry(backend):
    return importlib.import_module(f"{backend.package}.distributions.registry").REGISTRY


@pytest.mark.parametrize("case", CASES)
def test_truncation_is_the_smallest_below_tail_mass_and_log_prob_is_exact(backend, case):
    d = make_count(backend, case)
    K = d.truncation_point()
    assert np.all(backend.numpy(d.dropped_mass()) < d.tail_mass)
    # K is the smallest such point: one less would drop too much somewhere in the batch.
    assert np.any(backend.numpy(make_count(backend, case, truncation=K - 1).dropped_mass()) >= d.tail_mass)
    support = d.enumerate_support()
    assert tuple(support.shape) == (K + 1,) + tuple(d.batch_shape)
    grid = d.enumerate_support(expand=False).flatten()
    assert tuple(grid.shape) == (K + 1,)
    expected = cases.count_reference_log_pmf(case, backend.numpy(grid)).T
    expected = expected - np.logaddexp.reduce(expected, axis=-1, keepdims=True)
    ours = backend.numpy(d.log_prob_on_grid(grid))
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.exp(ours).sum(-1), 1.0, rtol=1e-12)
    # log_prob agrees with the grid on the values of each element's support.
    in_support = np.isfinite(expected.T)
    values = np.where(in_support, backend.numpy(support), 0.0)
    np.testing.assert_allclose(
        backend.numpy(d.log_prob(backend.array(values)))[in_support], ours.T[in_support], rtol=1e-12
    )


def test_the_window_drops_both_tails_and_follows_the_spread_not_the_mean(backend):
    """``L`` is the largest count with ``P(N < L) < tail_mass`` and ``K`` the smallest with
    ``P(N > K) < tail_mass`` over the batch (SciPy's CDF); SciPy's quantiles (named class) and the
    log-pmf on a grid (generic class) find the same window; at rate 10⁶ it keeps ≈ 10⁴ values."""
    lib, tail_mass = backend.lib, 1e-6
    rates = np.array([1e4, 1e4 + 60.0])
    named = lib.Poisson(backend.array(rates), estimator=lib.ReinMax())
    first, last = named.support_window()
    generic = lib.ReparameterizedDiscrete(backend.dist.Poisson(backend.array(rates)), lib.ReinMax())
    assert generic.support_window() == (first, last) and named.truncation_point() == last
    assert np.all(stats.poisson.cdf(first - 1, rates) < tail_mass) and np.any(
        stats.poisson.cdf(first, rates) >= tail_mass
    )
    assert np.all(stats.poisson.sf(last, rates) < tail_mass) and np.any(stats.poisson.sf(last - 1, rates) >= tail_mass)
    expected = stats.poisson.cdf(first - 1, rates) + stats.poisson.sf(last, rates)
    np.testing.assert_allclose(backend.numpy(named.dropped_mass()), expected, rtol=1e-9)
    # The grid's 1 − CDF: each log-pmf is a difference of terms ≈ 10⁵ (rounding ≈ 1e-11 absolute).
    np.testing.assert_allclose(backend.numpy(generic.dropped_mass()), expected, rtol=0, atol=5e-11)
    # A fixed window (L, K) is the searched one; a value below L scores the renormalised base pmf.
    fixed = lib.Poisson(backend.array(rates), truncation=(first, last))
    assert fixed.support_window() == (first, last)
    below = backend.array([float(first - 5)] * 2)
    log_norm = np.logaddexp.reduce(stats.poisson.logpmf(np.arange(first, last + 1)[:, None], rates), axis=0)
    np.testing.assert_allclose(
        backend.numpy(fixed.log_prob(below)), stats.poisson.logpmf(first - 5, rates) - log_norm, rtol=1e-9
    )
    for bad in [(5, 3), (-1, 3), (1.5, 3), (1, 2, 3)]:
        with pytest.raises(ValueError, match="truncation"):
            lib.Poisson(backend.array(3.0), truncation=bad)
    # Rate 10⁶, batch 100: a window of ≈ 2 × 4.9 standard deviations; values in it, gradients finite.
    huge = np.full(100, 1e6)

    def sample_and_score(rate):
        d = lib.Poisson(rate, estimator=lib.ReinMax(), truncation=(first_huge, last_huge))
        value = backend.rsample(d, backend.rng(3).next())
        return (value + d.log_prob(value)).sum()

    first_huge, last_huge = lib.Poisson(backend.array(huge)).support_window()
    assert 9_000 < last_huge - first_huge + 1 < 10_500 and first_huge > 990_000
    (grad,) = backend.grad(sample_and_score, huge)
    assert np.all(np.isfinite(grad))


def test_poisson_log_prob_at_large_rates_keeps_float32_precision(backend):
    """The Poisson log-pmf on its window, centred (redge_core.support.poisson_centring), in float32:
    within 16 ulp of the largest |log p| of the SciPy float64 value at rates 3.7, 10⁴ and 10⁶ (its
    terms ``n log λ`` and ``log n!`` are each ≈ 10⁵ at rate 10⁴: uncentred, float32 rounds them to
    ≈ 0.01)."""
    for rate in np.array([3.7, 1e4, 1e6], np.float32):
        d = backend.lib.Poisson(backend.array([rate], dtype="float32"))
        first, last = d.support_window()
        values = np.arange(first, last + 1)
        expected = stats.poisson.logpmf(values, float(rate))
        expected -= np.logaddexp.reduce(expected)
        actual = backend.numpy(d.log_prob(backend.array(values.reshape(-1, 1), dtype="float32"))).reshape(-1)
        bound = 16 * np.finfo(np.float32).eps * (1 + np.abs(expected).max())
        assert np.abs(actual - expected).max() <= bound, (rate, np.abs(actual - expected).max(), bound)


@pytest.mark.parametrize("estimator_id", ["straight_through", "gumbel_softmax", "reinmax"])
@pytest.mark.parametrize("case", CASES)
def test_samples_follow_the_truncated_pmf(backend, case, estimator_id):
    d = make_count(backend, case, make_estimator(backend, estimator_id))
    samples = backend.numpy(backend.sample(d, backend.rng(0).next(), (LAW_DRAWS,)))
    support = backend.numpy(d.enumerate_support(expand=False).flatten())
    assert np.all(samples == np.round(samples)), "values are not integer-valued"
    log_pmf = backend.numpy(d.log_prob_on_grid(backend.array(support)))
    for b in range(d.batch_shape[0]):
        counts = (samples[:, b, None] == support).sum(0).astype(float)
        assert counts.sum() == LAW_DRAWS, "a sample fell outside the truncated support"
        # One chi-square test per batch element at the suite's false-alarm rate (1e-3).
        assert cases.pooled_chi_square_pvalue(counts, np.exp(log_pmf[b])) > cases.FALSE_ALARM


@pytest.mark.parametrize("case", CASES)
def test_redge_count_samples_stay_on_the_support_and_their_law_bias_is_recorded(backend, case, report):
    d = make_count(backend, case, backend.lib.ReDGE())
    samples = backend.numpy(backend.sample(d, backend.rng(1).next(), (LAW_DRAWS,)))
    support = backend.numpy(d.enumerate_support(expand=False).flatten())
    probs = np.exp(backend.numpy(d.log_prob_on_grid(backend.array(support))))
    assert np.all(np.isin(samples, support)), "a ReDGE sample is not a kept count"
    assert np.all(probs.T[samples.astype(int), np.arange(samples.shape[1])] > 0), "a sample off its element's support"
    frequencies = (samples[..., None] == support).mean(0)
    tv = 0.5 * np.abs(frequencies - probs).sum(-1)
    report(
        f"{backend.name:7s} ReDGE {case:18s}: TV(samples, truncated pmf) per batch element {np.round(tv, 4)} "
        f"({LAW_DRAWS} draws)"
    )


@pytest.mark.parametrize("case, parameter", [("poisson", "rate"), ("binomial", "probs")])
def test_straight_through_is_exact_for_the_mean(backend, case, parameter):
    """For a linear test function ST's surrogate is exact: d/dλ E[N] = 1, d/dp E[N] = n, up to the
    dropped mass."""
    name, kwargs = cases.COUNT_CASES[case]
    arrays = count_arrays(backend, case)
    truncation = make_count(backend, case).truncation_point()
    key = backend.rng(1).next()

    def build(value):
        return getattr(backend.lib, name)(
            **{**arrays, parameter: value}, estimator=backend.lib.StraightThrough(), truncation=truncation
        )

    (surrogate,) = backend.grad(lambda v: backend.rsample(build(v), key, (100,)).mean(0).sum(), kwargs[parameter])
    (exact,) = backend.grad(lambda v: build(v).mean.sum(), kwargs[parameter])
    np.testing.assert_allclose(surrogate, exact, rtol=1e-9, atol=1e-12)
    expected = np.ones_like(kwargs["rate"]) if case == "poisson" else kwargs["total_count"]
    assert np.all(np.abs((surrogate - expected) / expected) < 1e-3), f"{surrogate} vs {expected}"


def test_gradient_quality_on_counts_against_summation(backend, report):
    """Each estimator's mean gradient of E[(N − 4)²] for N ~ Poisson(3.5), vs the exact gradient by
    summation over the truncated support: bias and per-draw variance are reported."""
    draws = 20_000
    truncation = backend.lib.Poisson(backend.array(3.5)).truncation_point()
    rng = backend.rng(2)

    def expected_loss(rate):
        # E[(N − 4)²] = Var N + (E N − 4)², both exact sums over the truncated support.
        d = backend.lib.Poisson(rate, truncation=truncation)
        return d.variance + (d.mean - 4) ** 2

    (exact,) = backend.grad(expected_loss, 3.5)
    for estimator_id in cases.ESTIMATORS:
        estimator = make_estimator(backend, estimator_id)
        key = rng.next()

        def per_copy_loss(rates, estimator=estimator, key=key):
            # One draw per copy of the rate: the per-copy gradients are the per-draw surrogates.
            values = backend.rsample(backend.lib.Poisson(rates, estimator=estimator, truncation=truncation), key)
            return ((values - 4) ** 2).sum()

        (per_draw,) = backend.grad(per_copy_loss, np.full(draws, 3.5))
        bias = per_draw.mean() - exact
        report(
            f"{backend.name:7s} Poisson(3.5) {estimator_id:16s} d/dλ E[(N−4)²]: mean {per_draw.mean():+.4f} vs exact "
            f"{float(exact):+.4f} (bias {float(bias):+.4f}), per-draw variance {per_draw.var():.3f}"
        )
        if estimator_id == "reinmax":
            # (N − 4)² is quadratic in the one-hot sample, where ReinMax (τ = 1) is unbiased:
            # within 5 standard errors (false alarm < 1e-6).
            assert abs(bias) < 5 * math.sqrt(per_draw.var() / draws)


@pytest.mark.parametrize("case", CASES)
def test_kl_is_exact_to_the_dropped_mass(backend, case):
    kl = backend.lib.kl_divergence
    d, other, other_host = (
        make_count(backend, case),
        make_count(backend, case, scale=0.9),
        host_twin(backend, case, 0.9),
    )
    support = d.enumerate_support(expand=False).flatten()
    log_p = backend.numpy(d.log_prob_on_grid(support))
    with np.errstate(invalid="ignore"):  # −∞ − (−∞) off the support, where p(k) = 0
        terms = np.exp(log_p) * (log_p - backend.numpy(other.log_prob_on_grid(support)))
    expected = np.where(log_p == -np.inf, 0.0, terms).sum(-1)
    np.testing.assert_allclose(backend.numpy(kl(d, other)), expected, rtol=1e-12)
    # Against the host's untruncated twin: equal up to the tail mass either side drops.
    np.testing.assert_allclose(backend.numpy(kl(d, other_host)), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(backend.numpy(kl(host_twin(backend, case), other)), expected, rtol=0, atol=1e-4)
    # The staticmethod the registry registers is the same function.
    np.testing.assert_array_equal(backend.numpy(type(d).kl_divergence(d, other)), backend.numpy(kl(d, other)))
    np.testing.assert_allclose(backend.numpy(kl(d, d.expand(d.batch_shape))), 0.0, atol=1e-12)
    if case == "poisson":
        rate_p, rate_q = backend.numpy(d.rate), backend.numpy(other.rate)
        closed_form = rate_p * np.log(rate_p / rate_q) + rate_q - rate_p
        np.testing.assert_allclose(backend.numpy(kl(d, other)), closed_form, rtol=0, atol=1e-4)


def test_kl_between_count_families_and_with_the_generic_class(backend):
    """A Poisson against a Geometric, and the generic class against a host count: summed exactly
    over the support of the first argument."""
    kl = backend.lib.kl_divergence
    p = backend.lib.Poisson(backend.array([2.0, 5.0]))
    q_host = backend.dist.Geometric(probs=backend.array([0.3, 0.1]))
    q = backend.lib.Geometric(probs=backend.array([0.3, 0.1]))
    support = p.enumerate_support(expand=False).flatten()
    log_p = backend.numpy(p.log_prob_on_grid(support))
    log_q = stats.geom.logpmf(backend.numpy(support)[:, None] + 1, [0.3, 0.1]).T
    expected = (np.exp(log_p) * (log_p - log_q)).sum(-1)
    np.testing.assert_allclose(backend.numpy(kl(p, q_host)), expected, rtol=1e-10)
    np.testing.assert_allclose(backend.numpy(kl(p, q)), expected, rtol=0, atol=1e-5)
    generic = backend.lib.ReparameterizedDiscrete(backend.dist.Poisson(backend.array([2.0, 5.0])))
    np.testing.assert_allclose(
        backend.numpy(kl(generic, backend.dist.Poisson(backend.array([2.0, 5.0])))), 0.0, atol=1e-5
    )
    np.testing.assert_allclose(backend.numpy(kl(generic, p)), 0.0, atol=1e-12)


def test_count_bad_input(backend):
    lib, dist, array = backend.lib, backend.dist, backend.array
    for build, argument in [
        (lambda: lib.Poisson(array(-1.0)), "rate"),
        (lambda: lib.Poisson(array(float("nan"))), "rate"),
        (lambda: lib.Binomial(array(2.5), probs=array(0.3)), "total_count"),
        (lambda: lib.Binomial(array(-2.0), probs=array(0.3)), "total_count"),
        (lambda: lib.Binomial(array(3.0), probs=array(1.3)), "probs"),
        (lambda: lib.Geometric(probs=array(-0.1)), "probs"),
        (lambda: lib.NegativeBinomial(array(-1.0), probs=array(0.5)), "concentration|total_count"),
        (lambda: lib.Poisson(array(1.0), tail_mass=0.0), "tail_mass"),
        (lambda: lib.Poisson(array(1.0), tail_mass=1.0), "tail_mass"),
        (lambda: lib.Poisson(array(1.0), truncation=-1), "truncation"),
        (lambda: lib.Poisson(array(1.0), truncation=2.5), "truncation"),
        (lambda: lib.Poisson(array(1.0)).log_prob(array(1.5)), "value"),
        (lambda: lib.Poisson(array(1.0)).log_prob(array(-1.0)), "value"),
        (lambda: lib.ReparameterizedDiscrete(dist.Normal(0.0, 1.0)), "integer support"),
        (lambda: lib.Poisson(array(1.0), estimator="st"), "estimator"),
        (lambda: lib.ReparameterizedDiscrete(dist.Poisson(array(1.0))).guide_parameter(), "guide"),
    ]:
        with pytest.raises(ValueError, match=argument):
            build()


def test_reparameterized_discrete_wraps_any_integer_distribution_and_expands(backend):
    base = backend.dist.Binomial(backend.array([3.0, 7.0]), probs=backend.array([0.2, 0.6]))
    d = backend.lib.ReparameterizedDiscrete(base, estimator=backend.lib.ReinMax())
    assert d.truncation_point() == 7 and np.all(backend.numpy(d.dropped_mass()) < 1e-12)
    samples = backend.numpy(backend.sample(d, backend.rng(3).next(), (2000,)))
    assert np.all(samples[:, 0] <= 3), "a value beyond a batch element's total_count"
    e = backend.lib.Poisson(backend.array(2.0), estimator=backend.lib.ReinMax()).expand((3, 2))
    assert type(e) is backend.lib.Poisson and e.batch_shape == (3, 2) and e.estimator == backend.lib.ReinMax()
    assert backend.rsample(e, backend.rng(4).next()).shape == (3, 2)
    fixed = backend.lib.Poisson(backend.array(2.0), truncation=4)
    expected_dropped = 1 - sum(math.exp(-2.0) * 2.0**k / math.factorial(k) for k in range(5))
    assert fixed.truncation_point() == 4
    assert float(fixed.dropped_mass()) == pytest.approx(expected_dropped, rel=1e-6)


def test_reparameterized_discrete_over_a_law_with_all_its_mass_at_the_lower_bound(backend):
    """A window of one count (Poisson(0), Binomial(p = 0), a Bernoulli whose mass at 1 is below the
    tail mass): it used to fail in the window search (an empty lower tail was reshaped)."""
    dist, lib = backend.dist, backend.lib
    for base in [
        dist.Poisson(backend.array([0.0, 0.0])),
        dist.Binomial(backend.array([10.0, 3.0]), probs=backend.array([0.0, 0.0])),
        dist.Bernoulli(probs=backend.array([1e-8, 1e-9])),
    ]:
        d = lib.ReparameterizedDiscrete(base, estimator=lib.ReinMax())
        assert d.truncation_point() == 0
        assert np.all(backend.numpy(backend.sample(d, backend.rng(0).next(), (5,))) == 0)
        np.testing.assert_allclose(backend.numpy(d.log_prob(backend.array([0.0, 0.0]))), 0.0, atol=1e-12)


def test_relaxed_is_a_deprecated_alias(backend):
    assert "Relaxed" in backend.lib.__all__ and backend.lib.Relaxed is backend.lib.distributions.Relaxed
    base = backend.dist.Poisson(backend.array([1.0, 4.0]))
    with pytest.warns(FutureWarning, match="ReparameterizedDiscrete"):
        old = backend.lib.Relaxed(base, truncation=12)
    assert isinstance(old, backend.lib.ReparameterizedDiscrete)
    new = backend.lib.ReparameterizedDiscrete(base, truncation=12)
    np.testing.assert_array_equal(backend.numpy(old.mean), backend.numpy(new.mean))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expanded = old.expand((3, 2))
    assert isinstance(expanded, backend.lib.Relaxed) and expanded.batch_shape == (3, 2)


# Small supports: the test counts searches, whatever the size of K.
SEARCH_ONCE_CASES = {
    "poisson": ("Poisson", {"rate": np.array([2.0, 7.0])}),
    "binomial": ("Binomial", {"total_count": np.array([5.0, 30.0]), "probs": np.array([0.3, 0.6])}),
}


@pytest.mark.parametrize("case", list(SEARCH_ONCE_CASES))
def test_support_is_searched_once_per_instance(backend, case, monkeypatch):
    calls = []
    search = redge_core.support.support_window

    def counted(*args, **kwargs):
        calls.append(args[1:])
        return search(*args, **kwargs)

    monkeypatch.setattr(redge_core.support, "support_window", counted)
    name, kwargs = SEARCH_ONCE_CASES[case]

    def build(scale=1.0, **extra):
        arrays = {k: backend.array(v * (1.0 if k == "total_count" else scale)) for k, v in kwargs.items()}
        return getattr(backend.lib, name)(**arrays, estimator=backend.lib.ReinMax(), **extra)

    d = build()
    # Pyro searches at the first use, NumPyro at construction (then K is static pytree data).
    assert len(calls) == (1 if backend.jittable else 0)
    K = d.truncation_point()
    other = build(scale=0.9, truncation=K)
    rng = backend.rng(5)
    value = backend.rsample(d, rng.next(), (3,))
    d.log_prob(value), d.mean, d.variance, d.dropped_mass(), d.enumerate_support(), d.mode
    d.log_prob_on_grid(d.enumerate_support(expand=False).flatten())
    backend.lib.kl_divergence(d, other), backend.lib.kl_divergence(other, d)
    expanded = d.expand((2,) + tuple(d.batch_shape))
    expanded.log_prob(backend.sample(expanded, rng.next())), expanded.mean, expanded.truncation_point()
    assert len(calls) == 1 and d.truncation_point() == K == expanded.truncation_point()


def test_log_prob_stays_differentiable_in_the_parameters_after_the_search(backend):
    """The instance keeps K (a shape), not a detached log-pmf: each call differentiates."""
    rate = np.array([2.0, 7.0])
    values = backend.array([1.0, 9.0])

    def log_likelihood(r):
        d = backend.lib.Poisson(r)
        d.truncation_point(), d.mean  # the search and one use before the differentiated call
        return d.log_prob(values).sum()

    (grad,) = backend.grad(log_likelihood, rate)
    d = backend.lib.Poisson(backend.array(rate))
    support = np.arange(d.truncation_point() + 1.0)
    probs = stats.poisson.pmf(support[:, None], rate)
    truncated_mean = (support[:, None] * probs).sum(0) / probs.sum(0)
    # d/dλ [log p(n) − log Σ_{k≤K} p(k)] = n/λ − 1 − (E_K[N]/λ − 1) = (n − E_K[N]) / λ
    np.testing.assert_allclose(grad, (np.array([1.0, 9.0]) - truncated_mean) / rate, rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_registry_protocol(backend, case):
    """from_host keeps the host's parameters (probs vs logits), the guide has the prior's fixed
    arguments, the mode is the most probable kept value, and the registry maps the host class."""
    name, _ = cases.COUNT_CASES[case]
    ours = getattr(backend.lib, name)
    host = host_twin(backend, case)
    estimator = backend.lib.ReinMax()
    assert registry(backend).ours_for_host(host) is ours
    twin = ours.from_host(host, estimator, truncation=None)
    reference = make_count(backend, case, estimator)
    assert (
        type(twin) is ours and twin.estimator == estimator and twin.truncation_point() == reference.truncation_point()
    )
    np.testing.assert_array_equal(backend.numpy(twin.mean), backend.numpy(reference.mean))
    if case != "poisson":
        logits_host = getattr(backend.dist, name)(
            **{k: v for k, v in count_arrays(backend, case).items() if k == "total_count"},
            logits=backend.array(np.array([-1.0, 0.5, 2.0])),
        )
        from_logits = ours.from_host(logits_host, estimator, truncation=30)
        assert from_logits.truncation == 30
        np.testing.assert_array_equal(backend.numpy(from_logits.logits), [-1.0, 0.5, 2.0])

    prior = make_count(backend, case, tail_mass=1e-4)
    init, constraint = prior.guide_parameter()
    if case == "poisson":
        assert constraint is backend.dist.constraints.positive
        np.testing.assert_array_equal(backend.numpy(init), backend.numpy(prior.rate))
    else:
        assert constraint is backend.dist.constraints.real
        np.testing.assert_allclose(backend.numpy(init), backend.numpy(prior.logits), rtol=1e-12)
    guide = prior.guide(init, estimator, truncation=None)
    assert type(guide) is ours and guide.estimator == estimator and guide.tail_mass == prior.tail_mass
    np.testing.assert_allclose(backend.numpy(guide.mean), backend.numpy(prior.mean), rtol=1e-10)
    if "total_count" in cases.COUNT_CASES[case][1]:
        np.testing.assert_array_equal(backend.numpy(guide.total_count), backend.numpy(prior.total_count))
    assert prior.guide(init, estimator, truncation=25).truncation_point() == 25

    mode = prior.mode
    support = backend.numpy(prior.enumerate_support(expand=False).flatten())
    log_pmf = backend.numpy(prior.log_prob_on_grid(backend.array(support)))
    assert tuple(mode.shape) == tuple(prior.batch_shape) and backend.dtype_name(mode) == "float64"
    np.testing.assert_array_equal(backend.numpy(mode), support[np.argmax(log_pmf, -1)])


def test_generic_class_is_registered_for_every_host_count(backend):
    """The generic class is registered for every host count distribution, and each host class
    is replaced under RelaxReparam by its named class."""
    reg = registry(backend)
    assert reg.is_ours(backend.lib.ReparameterizedDiscrete(backend.dist.Poisson(backend.array(1.0))))
    for name in ["Poisson", "Binomial", "Geometric", "NegativeBinomial"]:
        assert name in reg.supported_hosts()


@pytest.mark.parametrize(
    "estimator_id, elbo",
    [(e, "Trace_ELBO") for e in ["straight_through", "gumbel_softmax", "reinmax", "redge", "redge_rein"]]
    + [("reinmax", "TraceMeanField_ELBO")],
)
def test_svi_on_a_latent_count_reaches_the_exact_elbo_optimum(backend, estimator_id, elbo, report):
    """N ~ Poisson(5) seen through Normal(N, 0.7): a guide Poisson(rate) must reach the rate that
    maximises the exact ELBO. The asserted runs use a static truncation (40: P(N > 40) < 1e-15 at
    the rates met), as jitted NumPyro SVI needs; the reported Pyro runs choose it from tail_mass
    (once per distribution instance)."""
    estimator = make_estimator(backend, estimator_id)
    asserted = estimator_id in cases.COUNT_SVI_RELATIVE_ERROR_BOUND
    truncation = 40 if backend.jittable or asserted else None
    ppl, constraints = backend.ppl, backend.dist.constraints

    def model():
        prior = backend.lib.Poisson(
            backend.array(cases.COUNT_SVI_PRIOR_RATE), estimator=estimator, truncation=truncation
        )
        n = ppl.sample("n", prior)
        ppl.sample("x", backend.dist.Normal(n, cases.COUNT_SVI_SCALE), obs=backend.array(cases.COUNT_SVI_DATA))

    def guide():
        rate = ppl.param("rate", backend.array(cases.COUNT_SVI_PRIOR_RATE), constraint=constraints.positive)
        ppl.sample("n", backend.lib.Poisson(rate, estimator=estimator, truncation=truncation))

    if asserted:
        steps, particles = cases.COUNT_SVI_STEPS, cases.COUNT_SVI_PARTICLES
    else:  # reported only (the assertion is that the fit does not diverge): a shorter run
        steps, particles = REPORTED_SVI_STEPS, REPORTED_SVI_PARTICLES
    params, _ = backend.fit(model, guide, steps, 0.05, 0.05 * 0.02, elbo=elbo, num_particles=particles)
    fitted = float(params["rate"])
    optimum = cases.count_svi_exact_optimum()
    error = abs(fitted - optimum) / optimum
    report(
        f"{backend.name:7s} SVI {elbo:19s} {estimator_id:16s} Poisson latent: rate {fitted:.4f} vs exact-ELBO "
        f"optimum {optimum:.4f} ({100 * error:.1f}%; {steps} steps × {particles} particles, truncation {truncation})"
    )
    assert error < cases.COUNT_SVI_RELATIVE_ERROR_BOUND.get(estimator_id, 1.0)


# Issue 13, class 5: counts at their limits ------------------------------------------------------


def test_requests_that_cannot_be_served_are_refused_by_name(backend):
    """Each names the argument and, where the support would be too large, the cap and how to raise
    it, before anything beyond the cap is allocated."""
    lib, array = backend.lib, backend.array
    for build, message in [
        (lambda: lib.Poisson(array(float("inf"))), "rate"),
        (lambda: lib.Geometric(logits=array(-30.0)), "max_support=1000000.*larger max_support="),
        (lambda: lib.Geometric(probs=array(0.0)), "probs"),
        (lambda: lib.Poisson(array(100.0), max_support=50), "max_support=50"),
        (lambda: lib.Poisson(array(1.0), tail_mass=1e-16), "tail_mass"),
        (lambda: lib.Poisson(array(1.0), truncation=10**7), "max_support"),
        (lambda: lib.Poisson(array(1.0), max_support=0), "max_support"),
    ]:
        with pytest.raises(ValueError, match=message):
            build().truncation_point()
    assert redge_core.support.DEFAULT_MAX_SUPPORT == 1_000_000 and redge_core.support.MIN_TAIL_MASS == 1e-12
    # At the limits but servable: the smallest tail_mass, and a cap that the support just fits.
    K = int(np.argmax(stats.poisson.sf(np.arange(100), 3.0) < 1e-12))
    assert lib.Poisson(array(3.0), tail_mass=1e-12).truncation_point() == K
    assert lib.Poisson(array(3.0), max_support=K + 1, tail_mass=1e-12).truncation_point() == K
    with pytest.raises(ValueError, match=f"max_support={K}"):
        lib.Poisson(array(3.0), max_support=K, tail_mass=1e-12).truncation_point()
    # The guide keeps the prior's cap.
    prior = lib.Poisson(array(3.0), max_support=30)
    assert prior.guide(array(3.0), lib.ReinMax()).max_support == 30


def test_rate_zero_has_exact_finite_gradients(backend):
    """At rate 0 the searched support is {0}: log_prob(0) = 0 whatever the rate near 0 (its
    derivative is 0), and a sample's surrogate gradient is finite (the host's xlogy has 0/0)."""
    lib = backend.lib
    assert lib.Poisson(backend.array(0.0)).truncation_point() == 0
    (grad,) = backend.grad(lambda r: lib.Poisson(r).log_prob(backend.array(0.0)), 0.0)
    assert grad == 0.0
    key = backend.rng(7).next()
    (grad,) = backend.grad(lambda r: backend.rsample(lib.Poisson(r, estimator=lib.ReinMax()), key).sum(), 0.0)
    assert np.isfinite(grad)
    # Away from 0 nothing changes: d/dλ log p(1) = 1/λ − 1 − (E_K[N]/λ − 1).
    (grad,) = backend.grad(lambda r: lib.Poisson(r).log_prob(backend.array(1.0)), 2.0)
    d = lib.Poisson(backend.array(2.0))
    np.testing.assert_allclose(grad, (1.0 - float(d.mean)) / 2.0, rtol=1e-10)


def test_half_precision_counts_are_computed_in_float32(backend):
    """A float16 rate of 3000: the grid and the log-pmf in float32 (in float16 the variance came out
    as 83); its counts above 2048 are not exact in float16, so the values are in the compute dtype. At rate 30
    the values keep float16."""
    lib = backend.lib
    d = lib.Poisson(backend.array(3000.0, "float16"))
    K = d.truncation_point()
    assert K == lib.Poisson(backend.array(3000.0)).truncation_point()
    assert backend.dtype_name(d.mean) == backend.dtype_name(d.variance) == "float16"
    # Float16 rounds 3000 to a spacing of 2: within 0.1 % of the truncated Poisson's.
    np.testing.assert_allclose(backend.numpy(d.variance).astype(float), 3000.0, rtol=1e-3)
    np.testing.assert_allclose(backend.numpy(d.mean).astype(float), 3000.0, rtol=1e-3)
    value = backend.sample(d, backend.rng(8).next(), (4,))
    # The compute dtype: float32 in Pyro, NumPyro's default float (float64 under the suite's x64).
    assert backend.dtype_name(value) == ("float64" if backend.jittable else "float32")
    assert np.all(np.abs(backend.numpy(value) - 3000) < 300)
    small = lib.Poisson(backend.array([30.0, 2.0], "float16"), estimator=lib.ReinMax())
    value = backend.rsample(small, backend.rng(9).next(), (3,))
    assert backend.dtype_name(value) == "float16" and np.all(backend.numpy(value) == np.round(backend.numpy(value)))
    log_prob = small.log_prob(value)
    assert backend.dtype_name(log_prob) == "float16" and np.all(np.isfinite(backend.numpy(log_prob)))


# Issue 13, class 3: empty batches -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_empty_batches_give_empty_results(backend, case):
    name, kwargs = cases.COUNT_CASES[case]
    empty = {key: backend.array(value[:0]) for key, value in kwargs.items()}
    d = getattr(backend.lib, name)(**empty, estimator=backend.lib.ReinMax())
    rng = backend.rng(10)
    assert tuple(backend.sample(d, rng.next(), (3,)).shape) == (3, 0)
    value = backend.rsample(d, rng.next())
    assert tuple(value.shape) == (0,)
    for result in [d.log_prob(value), d.mean, d.variance, d.dropped_mass(), d.mode, backend.lib.kl_divergence(d, d)]:
        assert tuple(result.shape) == (0,)
    (grad,) = backend.grad(
        lambda p: (
            getattr(backend.lib, name)(**{**empty, **{"total_count": p}}).mean.sum()
            if "total_count" in kwargs
            else getattr(backend.lib, name)(p).mean.sum()
        ),
        np.zeros(0),
    )
    assert grad.shape == (0,)


# Issue 13, class 11 (count parts): the hosts' own conformance -----------------------------------


def test_infer_shapes_of_the_count_classes(backend):
    lib = backend.lib
    assert tuple(map(tuple, lib.Poisson.infer_shapes(rate=(3,)))) == ((3,), ())
    assert tuple(map(tuple, lib.Binomial.infer_shapes(total_count=(), probs=(2, 3)))) == ((2, 3), ())
    assert tuple(map(tuple, lib.NegativeBinomial.infer_shapes(total_count=(3,), logits=(2, 1)))) == ((2, 3), ())
    assert tuple(map(tuple, lib.Geometric.infer_shapes(probs=(4,)))) == ((4,), ())
