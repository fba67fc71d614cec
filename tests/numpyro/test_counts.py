import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

import numpyro_redge
from numpyro_redge.kl import kl_divergence
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def make_estimator(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(numpyro_redge, name)(**kwargs)


def make_count(case, estimator=None, scale=1.0, **extra):
    name, kwargs = cases.COUNT_CASES[case]
    arrays = {key: jnp.asarray(value * (1.0 if key == "total_count" else scale)) for key, value in kwargs.items()}
    if estimator is not None:
        extra["estimator"] = estimator
    return getattr(numpyro_redge, name)(**arrays, **extra)


def host_twin(case, scale=1.0):
    name, kwargs = cases.COUNT_CASES[case]
    arrays = {key: jnp.asarray(value * (1.0 if key == "total_count" else scale)) for key, value in kwargs.items()}
    return getattr(host, name)(**arrays)


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_truncation_and_exact_log_prob(case):
    d = make_count(case)
    K = d.truncation_point()
    assert bool(jnp.all(d.dropped_mass() < d.tail_mass))
    assert bool(jnp.any(make_count(case, truncation=K - 1).dropped_mass() >= d.tail_mass))
    support = d.enumerate_support(expand=False).flatten()
    assert support.shape == (K + 1,)
    expected = cases.count_reference_log_pmf(case, support).T
    expected = expected - jax.scipy.special.logsumexp(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(d.log_prob_on_grid(support), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jnp.exp(d.log_prob_on_grid(support)).sum(-1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("estimator_id", ["straight_through", "gumbel_softmax", "reinmax"])
@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_samples_follow_the_truncated_pmf(case, estimator_id):
    d = make_count(case, make_estimator(estimator_id))
    samples = d.sample(jax.random.PRNGKey(0), (cases.COUNT_DRAWS,))
    support = d.enumerate_support(expand=False).flatten()
    assert bool(jnp.all(samples == jnp.round(samples))), "values are not integer-valued"
    log_pmf = d.log_prob_on_grid(support)
    for b in range(d.batch_shape[0]):
        counts = np.asarray((samples[:, b, None] == support).sum(0), float)
        assert counts.sum() == cases.COUNT_DRAWS, "a sample fell outside the truncated support"
        assert cases.pooled_chi_square_pvalue(counts, np.exp(np.asarray(log_pmf[b]))) > cases.FALSE_ALARM


@pytest.mark.parametrize(
    "case, parameter, slope",
    [("poisson", "rate", lambda d: jnp.ones_like(d.rate)), ("binomial", "probs", lambda d: d.total_count)],
)
def test_straight_through_is_exact_for_the_mean(case, parameter, slope):
    name, kwargs = cases.COUNT_CASES[case]
    arrays = {key: jnp.asarray(value) for key, value in kwargs.items()}
    truncation = make_count(case).truncation_point()

    def build(value):
        return getattr(numpyro_redge, name)(
            **{**arrays, parameter: value}, estimator=numpyro_redge.StraightThrough(), truncation=truncation
        )

    surrogate = jax.grad(lambda v: build(v).rsample(jax.random.PRNGKey(1), (100,)).mean(0).sum())(arrays[parameter])
    exact = jax.grad(lambda v: build(v).mean.sum())(arrays[parameter])
    np.testing.assert_allclose(surrogate, exact, rtol=1e-9, atol=1e-12)
    expected = slope(build(arrays[parameter]))
    assert bool(jnp.all(jnp.abs((surrogate - expected) / expected) < 1e-3))


def test_gradient_quality_on_counts_against_summation(report):
    draws = 20_000
    for estimator_id in cases.ESTIMATORS:
        estimator = make_estimator(estimator_id)
        truncation = numpyro_redge.Poisson(3.5).truncation_point()

        def expected_loss(rate):
            d = numpyro_redge.Poisson(rate, truncation=truncation)
            support = d.enumerate_support(expand=False).flatten()
            return (jnp.exp(d.log_prob(support)) * (support - 4) ** 2).sum()

        exact = jax.grad(expected_loss)(3.5)

        def per_copy_loss(rates):
            values = numpyro_redge.Poisson(rates, estimator=estimator, truncation=truncation).rsample(jax.random.PRNGKey(2))
            return ((values - 4) ** 2).sum()

        per_draw = jax.jit(jax.grad(per_copy_loss))(jnp.full(draws, 3.5))
        bias = float(per_draw.mean() - exact)
        report(
            f"jax   Poisson(3.5) {estimator_id:16s} d/dλ E[(N−4)²]: mean {float(per_draw.mean()):+.4f} vs exact "
            f"{float(exact):+.4f} (bias {bias:+.4f}), per-draw variance {float(per_draw.var()):.3f}"
        )
        if estimator_id == "reinmax":
            # Quadratic in the one-hot sample: ReinMax (τ = 1) is unbiased; 5 standard errors.
            assert abs(bias) < 5 * math.sqrt(float(per_draw.var()) / draws)


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_kl_is_exact_to_the_dropped_mass(case):
    d, other, other_host = make_count(case), make_count(case, scale=0.9), host_twin(case, scale=0.9)
    support = d.enumerate_support(expand=False).flatten()
    log_p = d.log_prob_on_grid(support)
    expected = jnp.where(log_p == -jnp.inf, 0.0, jnp.exp(log_p) * (log_p - other.log_prob_on_grid(support))).sum(-1)
    np.testing.assert_allclose(kl_divergence(d, other), expected, rtol=1e-12)
    np.testing.assert_allclose(kl_divergence(d, other_host), kl_divergence(d, other), rtol=0, atol=1e-4)
    np.testing.assert_allclose(kl_divergence(host_twin(case), other), kl_divergence(d, other), rtol=0, atol=1e-4)
    if case == "poisson":
        closed_form = d.rate * jnp.log(d.rate / other.rate) + other.rate - d.rate
        np.testing.assert_allclose(kl_divergence(d, other), closed_form, rtol=0, atol=1e-4)


def test_count_bad_input():
    for build, argument in [
        (lambda: numpyro_redge.Poisson(-1.0), "rate"),
        (lambda: numpyro_redge.Poisson(jnp.nan), "rate"),
        (lambda: numpyro_redge.Binomial(2.5, probs=0.3), "total_count"),
        (lambda: numpyro_redge.Binomial(-2.0, probs=0.3), "total_count"),
        (lambda: numpyro_redge.Binomial(3.0, probs=1.3), "probs"),
        (lambda: numpyro_redge.Geometric(probs=-0.1), "probs"),
        (lambda: numpyro_redge.NegativeBinomial(-1.0, probs=0.5), "concentration|total_count"),
        (lambda: numpyro_redge.Poisson(1.0, tail_mass=0.0), "tail_mass"),
        (lambda: numpyro_redge.Poisson(1.0, tail_mass=1.0), "tail_mass"),
        (lambda: numpyro_redge.Poisson(1.0, truncation=-1), "truncation"),
        (lambda: numpyro_redge.Poisson(1.0, truncation=2.5), "truncation"),
        (lambda: numpyro_redge.Poisson(1.0).log_prob(1.5), "value"),
        (lambda: numpyro_redge.Poisson(1.0).log_prob(-1.0), "value"),
        (lambda: numpyro_redge.Relaxed(host.Normal(0.0, 1.0)), "integer support"),
        (lambda: numpyro_redge.Poisson(1.0, estimator="st"), "estimator"),
        (lambda: jax.jit(lambda r: numpyro_redge.Poisson(r).sample(jax.random.PRNGKey(0)))(1.0), "truncation"),
    ]:
        with pytest.raises(ValueError, match=argument):
            build()


def test_relaxed_wraps_any_integer_distribution_expands_and_jits():
    base = host.Binomial(jnp.array([3.0, 7.0]), probs=jnp.array([0.2, 0.6]))
    d = numpyro_redge.Relaxed(base, estimator=numpyro_redge.ReinMax())
    assert d.truncation_point() == 7 and bool(jnp.all(d.dropped_mass() < 1e-12))
    samples = d.sample(jax.random.PRNGKey(3), (2000,))
    assert bool(jnp.all(samples[:, 0] <= 3)), "a value beyond a batch element's total_count"
    e = numpyro_redge.Poisson(2.0, estimator=numpyro_redge.ReinMax()).expand((3, 2))
    assert type(e) is numpyro_redge.Poisson and e.batch_shape == (3, 2) and e.estimator == numpyro_redge.ReinMax()
    assert e.sample(jax.random.PRNGKey(4)).shape == (3, 2)
    fixed = numpyro_redge.Poisson(2.0, truncation=4)
    expected_dropped = 1 - sum(math.exp(-2.0) * 2.0**k / math.factorial(k) for k in range(5))
    assert fixed.truncation_point() == 4 and float(fixed.dropped_mass()) == pytest.approx(expected_dropped, rel=1e-6)
    jitted = jax.jit(lambda dist, key: dist.sample(key, (5,)))(fixed, jax.random.PRNGKey(5))
    assert jitted.shape == (5,) and bool(jnp.all(jitted <= 4))


@pytest.mark.parametrize(
    "estimator_id, elbo",
    [(e, "Trace_ELBO") for e in ["straight_through", "gumbel_softmax", "reinmax", "redge", "redge_rein"]]
    + [("reinmax", "TraceMeanField_ELBO")],
)
def test_svi_on_a_latent_count_reaches_the_exact_elbo_optimum(estimator_id, elbo, report):
    """Jitted NumPyro SVI; the truncation is static (40: P(N > 40) < 1e-15 at the rates met)."""
    estimator = make_estimator(estimator_id)
    truncation = 40

    def model():
        n = numpyro.sample("n", numpyro_redge.Poisson(cases.COUNT_SVI_PRIOR_RATE, estimator=estimator, truncation=truncation))
        numpyro.sample("x", host.Normal(n, cases.COUNT_SVI_SCALE), obs=cases.COUNT_SVI_DATA)

    def guide():
        rate = numpyro.param("rate", cases.COUNT_SVI_PRIOR_RATE, constraint=host.constraints.positive)
        numpyro.sample("n", numpyro_redge.Poisson(rate, estimator=estimator, truncation=truncation))

    schedule = optax.exponential_decay(0.05, cases.COUNT_SVI_STEPS, 0.02)
    elbo_object = {"Trace_ELBO": Trace_ELBO, "TraceMeanField_ELBO": TraceMeanField_ELBO}[elbo](
        num_particles=cases.COUNT_SVI_PARTICLES
    )
    svi = SVI(model, guide, optax.adam(schedule), elbo_object)
    fitted = float(svi.run(jax.random.PRNGKey(0), cases.COUNT_SVI_STEPS, progress_bar=False).params["rate"])
    optimum = cases.count_svi_exact_optimum()
    error = abs(fitted - optimum) / optimum
    report(f"numpyro SVI {elbo:19s} {estimator_id:16s} Poisson latent: rate {fitted:.4f} vs exact-ELBO optimum {optimum:.4f} ({100 * error:.1f}%)")
    assert error < cases.COUNT_SVI_RELATIVE_ERROR_BOUND.get(estimator_id, 1.0)
