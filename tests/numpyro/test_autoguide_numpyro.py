"""NumPyro-only AutoRelaxed mechanics (the shared behaviour is in tests/test_autoguide.py):
``sample_posterior`` draws every latent site, with a leading sample shape, under ``vmap``."""

import jax
import jax.numpy as jnp
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO

import numpyro_redge
from numpyro_redge import examples
from redge_core.examples import MIXTURE_DATA

pytestmark = pytest.mark.usefixtures("x64", "validation")


def test_sample_posterior_draws_every_latent_site():
    data = jnp.asarray(MIXTURE_DATA)
    model = numpyro_redge.relax(examples.mixture_model, numpyro_redge.ReinMax())
    guide = numpyro_redge.AutoRelaxed(model, numpyro_redge.ReinMax())
    svi = SVI(model, guide, optax.adam(0.05), Trace_ELBO())
    params = svi.get_params(svi.init(jax.random.PRNGKey(0), data))
    posterior = guide.sample_posterior(jax.random.PRNGKey(2), params, data, sample_shape=(4,))
    assert posterior["z"].shape == (4, len(data), 2) and posterior["means"].shape == (4, 2)
    assert bool(jnp.all(posterior["z"].sum(-1) == 1))
    single = guide.sample_posterior(jax.random.PRNGKey(2), params, data)
    assert single["z"].shape == (len(data), 2) and single["means"].shape == (2,)
