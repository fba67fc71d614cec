import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")

HOST_TO_OURS = [
    (lambda: host.Bernoulli(probs=jnp.full((3,), 0.3)), numpyro_redge.Bernoulli, "probs"),
    (lambda: host.Bernoulli(logits=jnp.zeros(3)), numpyro_redge.Bernoulli, "logits"),
    (lambda: host.Poisson(jnp.full((3,), 2.0)), numpyro_redge.Poisson, "rate"),
    (lambda: host.Binomial(jnp.full((3,), 5.0), probs=jnp.full((3,), 0.4)), numpyro_redge.Binomial, "probs"),
    (lambda: host.Geometric(probs=jnp.full((3,), 0.4)), numpyro_redge.Geometric, "probs"),
    (lambda: host.NegativeBinomial(jnp.full((3,), 2.0), logits=jnp.zeros(3)), numpyro_redge.NegativeBinomial, "logits"),
]


@pytest.mark.parametrize("make_host, ours, parameter", HOST_TO_OURS)
def test_host_sites_become_ours_inside_plates_with_wrappers(make_host, ours, parameter):
    base = make_host()
    mask = jnp.array([True, False, True])

    def model():
        with numpyro.plate("items", 3):
            numpyro.sample("plain", base)
            numpyro.sample("masked", base.mask(mask))
        with numpyro.plate("pairs", 2):
            numpyro.sample("wrapped", base.expand([2, 3]).to_event(1))

    reparam = numpyro_redge.RelaxReparam(numpyro_redge.ReinMax(), truncation=30)
    relaxed = handlers.reparam(model, config={"plain": reparam, "wrapped": reparam, "masked": reparam})
    trace = handlers.trace(handlers.seed(relaxed, 0)).get_trace()
    plain = trace["plain"]["fn"]
    assert type(plain) is ours and plain.estimator == numpyro_redge.ReinMax()
    np.testing.assert_allclose(getattr(plain, parameter), getattr(base, parameter))
    assert trace["wrapped"]["fn"].event_shape == (3,) and trace["wrapped"]["fn"].batch_shape == (2,)
    assert isinstance(trace["masked"]["fn"], host.MaskedDistribution)
    for site in ("plain", "masked", "wrapped"):
        assert bool(jnp.all(jnp.isfinite(trace[site]["fn"].log_prob(trace[site]["value"]))))


def test_observed_sites_are_left_alone():
    def model():
        numpyro.sample("x", host.Poisson(2.0), obs=3.0)

    trace = handlers.trace(handlers.seed(handlers.reparam(model, config={"x": numpyro_redge.RelaxReparam()}), 0)).get_trace()
    assert type(trace["x"]["fn"]) is host.Poisson and float(trace["x"]["value"]) == 3.0


@pytest.mark.parametrize(
    "make_fn, reparam, message",
    [
        (lambda: host.Categorical(logits=jnp.zeros(3)), numpyro_redge.RelaxReparam(), "site 'z'.*integer index.*OneHotCategorical"),
        (lambda: host.Normal(0.0, 1.0), numpyro_redge.RelaxReparam(), "site 'z'.*Normal is not supported"),
        (lambda: host.Bernoulli(probs=0.3), numpyro_redge.RelaxReparam(numpyro_redge.IMLE(samples=2)), "site 'z'.*estimator"),
    ],
)
def test_errors_name_the_site(make_fn, reparam, message):
    def model():
        numpyro.sample("z", make_fn())

    with pytest.raises(ValueError, match=message):
        handlers.trace(handlers.seed(handlers.reparam(model, config={"z": reparam}), 0)).get_trace()


def test_an_unchanged_model_is_fitted_by_svi_to_the_exact_elbo_optimum(report):
    """The sparse Bernoulli feature model written with NumPyro's own Bernoulli, relaxed by one line
    of reparam, fitted by jitted SVI with a mean-field guide of ours."""
    weights = jnp.asarray(cases.FEATURE_WEIGHTS)

    def model():
        with numpyro.plate("features", 3):
            z = numpyro.sample("z", host.Bernoulli(probs=cases.FEATURE_PRIOR))
        numpyro.sample("y", host.Normal(z @ weights, cases.FEATURE_SCALE), obs=cases.FEATURE_DATA)

    def guide():
        logits = numpyro.param("logits", jnp.zeros(3))
        with numpyro.plate("features", 3):
            numpyro.sample("z", numpyro_redge.Bernoulli(logits=logits, estimator=numpyro_redge.ReinMax()))

    relaxed = handlers.reparam(model, config={"z": numpyro_redge.RelaxReparam(numpyro_redge.ReinMax())})
    steps = 1000
    svi = SVI(relaxed, guide, optax.adam(optax.exponential_decay(0.05, steps, 0.01)), Trace_ELBO(num_particles=32))
    fitted = np.asarray(jax.nn.sigmoid(svi.run(jax.random.PRNGKey(0), steps, progress_bar=False).params["logits"]))
    exact = cases.feature_mean_field_optimum()
    gap = float(np.abs(fitted - exact).max())
    report(f"numpyro RelaxReparam(ReinMax) feature model: guide {fitted.round(4)} vs exact-ELBO optimum {exact.round(4)}, max gap {gap:.4f}")
    assert gap < cases.FEATURE_MARGINAL_BOUND
