import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro.infer import SVI, Predictive, Trace_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def mixture_model(data):
    """Gaussian mixture whose assignments are ours (NumPyro has no OneHotCategorical)."""
    means = numpyro.sample("means", host.Normal(jnp.asarray(cases.MIXTURE_PRIOR_LOC), cases.MIXTURE_PRIOR_SCALE).to_event(1))
    with numpyro.plate("data", len(data)):
        z = numpyro.sample("z", numpyro_redge.OneHotCategorical(probs=jnp.asarray(cases.MIXTURE_WEIGHTS), estimator=numpyro_redge.ReinMax()))
        numpyro.sample("x", host.Normal((z * means).sum(-1), cases.MIXTURE_SCALE), obs=data)


def fit(model, guide, steps, *args, particles=16):
    svi = SVI(model, guide, optax.adam(optax.exponential_decay(0.05, steps, 0.01)), Trace_ELBO(num_particles=particles))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*discrete latent.*")
        return svi.run(jax.random.PRNGKey(0), steps, *args, progress_bar=False).params


def test_auto_relaxed_fits_a_gaussian_mixture_to_the_exact_posterior(report):
    data = jnp.asarray(cases.MIXTURE_DATA)
    model = numpyro_redge.relax(mixture_model, numpyro_redge.ReinMax())
    guide = numpyro_redge.AutoRelaxed(model, numpyro_redge.ReinMax())
    params = fit(model, guide, 1500, data)
    exact_means, exact_marginals = cases.mixture_exact_posterior()
    median = guide.median(params)
    fitted_means = np.asarray(median["means"])
    fitted_marginals = np.asarray(jax.nn.softmax(params["auto_z_relaxed"], -1))
    mean_gap, marginal_gap = abs(fitted_means - exact_means).max(), abs(fitted_marginals - exact_marginals).max()
    report(f"numpyro AutoRelaxed(ReinMax) mixture: means {fitted_means.round(3)} vs exact {exact_means.round(3)}; max marginal gap {marginal_gap:.4f}")
    assert mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND
    assert np.array_equal(np.argmax(median["z"], -1), exact_marginals.argmax(-1))
    quantiles = guide.quantiles(params, [0.05, 0.95])["means"]
    assert quantiles.shape == (2, 2) and bool(jnp.all((quantiles[0] < median["means"]) & (median["means"] < quantiles[1])))
    predictive = Predictive(model, guide=guide, params=params, num_samples=5, return_sites=["z", "means"])(jax.random.PRNGKey(1), data)
    assert predictive["z"].shape == (5, len(data), 2) and bool(jnp.all(predictive["z"].sum(-1) == 1))
    posterior = guide.sample_posterior(jax.random.PRNGKey(2), params, data, sample_shape=(4,))
    assert posterior["z"].shape == (4, len(data), 2) and posterior["means"].shape == (4, 2)


def test_auto_relaxed_on_an_unchanged_feature_model_reaches_the_exact_elbo_optimum(report):
    weights = jnp.asarray(cases.FEATURE_WEIGHTS)

    def model():
        with numpyro.plate("features", 3):
            z = numpyro.sample("z", host.Bernoulli(probs=cases.FEATURE_PRIOR))
        numpyro.sample("y", host.Normal(z @ weights, cases.FEATURE_SCALE), obs=cases.FEATURE_DATA)

    model = numpyro_redge.relax(model, numpyro_redge.ReinMax())
    guide = numpyro_redge.AutoRelaxed(model, numpyro_redge.ReinMax())
    fitted = np.asarray(jax.nn.sigmoid(fit(model, guide, 1000, particles=32)["auto_z_relaxed"]))
    exact = cases.feature_mean_field_optimum()
    gap = float(abs(fitted - exact).max())
    report(f"numpyro AutoRelaxed(ReinMax) feature model: {fitted.round(4)} vs exact-ELBO optimum {exact.round(4)} (gap {gap:.4f})")
    assert gap < cases.FEATURE_MARGINAL_BOUND


def test_auto_relaxed_with_subsampling_count_sites_and_jit():
    data = jnp.arange(10.0)

    def model(data):
        with numpyro.plate("data", 10, subsample_size=4) as index:
            n = numpyro.sample("n", host.Poisson(3.0))
            numpyro.sample("x", host.Normal(n, 1.0), obs=data[index])

    model = numpyro_redge.relax(model, numpyro_redge.ReinMax(), truncation=30)
    guide = numpyro_redge.AutoRelaxed(model, numpyro_redge.ReinMax(), truncation=30)
    params = fit(model, guide, 5, data, particles=1)
    assert params["auto_n_relaxed"].shape == (10,), "the parameter has the plate's full size"
    medians = guide.median(params)["n"]
    assert medians.shape == (10,) and bool(jnp.all(medians == jnp.round(medians)))


def test_auto_relaxed_errors_name_the_site():
    def model():
        numpyro.sample("c", host.Categorical(logits=jnp.zeros(3)))

    guide = numpyro_redge.AutoRelaxed(model)
    with pytest.raises(ValueError, match="site 'c'.*OneHotCategorical"):
        numpyro.handlers.seed(guide, 0)()
    with pytest.raises(ValueError, match="init_scale"):
        numpyro_redge.AutoRelaxed(model, init_scale=0.0)
