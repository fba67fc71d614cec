"""The NumPyro half of ``redge demo`` (the command itself is :func:`pyro_redge.cli.main`, which
passes the model): the same model, estimators and schedule, fitted by jitted NumPyro SVI."""

import time

import jax
import jax.numpy as jnp
import numpyro
import optax
from numpyro.infer import SVI, Trace_ELBO
from tqdm import tqdm

import numpyro_redge


def demo(prior, log_likelihood, estimators, steps=500, particles=32):
    """Fit ``z ~ OneHotCategorical(prior)``, ``factor(z · log_likelihood)`` with NumPyro's
    ``Trace_ELBO`` for each estimator of ``estimators`` ({label: (class name, kwargs)});
    return {label: (fitted probabilities, seconds)}."""
    prior = jnp.asarray(prior, jnp.float32)
    table = jnp.asarray(log_likelihood, jnp.float32)
    results = {}
    for label, (name, kwargs) in estimators.items():
        estimator = getattr(numpyro_redge, name)(**kwargs)

        def model():
            z = numpyro.sample("z", numpyro_redge.OneHotCategorical(probs=prior, estimator=estimator))
            numpyro.factor("likelihood", z @ table)

        def guide():
            logits = numpyro.param("logits", jnp.zeros_like(prior))
            numpyro.sample("z", numpyro_redge.OneHotCategorical(logits=logits, estimator=estimator))

        optimizer = optax.adam(optax.exponential_decay(0.05, steps, 0.01))
        svi = SVI(model, guide, optimizer, Trace_ELBO(num_particles=particles))
        start = time.perf_counter()
        state = svi.init(jax.random.PRNGKey(0))
        update = jax.jit(svi.update)
        for _ in tqdm(range(steps), desc=f"numpyro {label}", leave=False):
            state, _ = update(state)
        params = svi.get_params(state)
        seconds = time.perf_counter() - start
        results[label] = (jax.device_get(jax.nn.softmax(params["logits"])), seconds)
    return results
