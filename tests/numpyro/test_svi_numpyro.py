"""NumPyro-only SVI mechanics (the shared behaviour is in tests/test_svi.py): NumPyro's own
optimisers, and its discrete-latent warning, silenced for our sites only."""

import warnings

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def test_svi_with_numpyro_optim():
    prior = jnp.asarray(cases.SVI_PRIOR)
    estimator = numpyro_redge.ReinMax()

    def model():
        z = numpyro.sample("z", numpyro_redge.OneHotCategorical(probs=prior, estimator=estimator))
        numpyro.factor("likelihood", z @ jnp.asarray(cases.SVI_LOG_LIKELIHOOD))

    def guide():
        logits = numpyro.param("logits", jnp.zeros(len(cases.SVI_PRIOR)))
        numpyro.sample("z", numpyro_redge.OneHotCategorical(logits=logits, estimator=estimator))

    optimizer = numpyro.optim.Adam(optax.exponential_decay(0.05, cases.SVI_STEPS, 0.01))
    svi = SVI(model, guide, optimizer, Trace_ELBO(num_particles=cases.SVI_PARTICLES))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*discrete latent.*")
        result = svi.run(jax.random.PRNGKey(0), cases.SVI_STEPS, progress_bar=False)
    exact, _ = cases.svi_exact_posteriors()
    assert cases.total_variation(jax.nn.softmax(result.params["logits"]), exact) < cases.SVI_LINEAR_TV_BOUND["reinmax"]


def test_host_discrete_sites_still_warn():
    """The warning is silenced for our sites only: a host Categorical latent still raises it."""

    def model():
        numpyro.sample("z", host.Categorical(logits=jnp.zeros(3)))

    def guide():
        numpyro.sample("z", host.Categorical(logits=numpyro.param("logits", jnp.zeros(3))))

    svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
    with pytest.warns(UserWarning, match="discrete latent"):
        svi.init(jax.random.PRNGKey(0))
