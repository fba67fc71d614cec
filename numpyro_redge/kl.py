"""Exact KL divergences between our distributions and NumPyro's matching discrete ones,
registered with NumPyro's ``multipledispatch`` :func:`numpyro.distributions.kl.kl_divergence`, so
that ``TraceMeanField_ELBO`` uses them analytically."""

import jax
import jax.numpy as jnp
from numpyro.distributions import BernoulliLogits, BernoulliProbs, CategoricalLogits, CategoricalProbs
from numpyro.distributions.kl import kl_divergence

from numpyro_redge._math import categorical_kl, safe_log
from numpyro_redge.distributions import Bernoulli, OneHotCategorical

__all__ = ["kl_divergence"]


def _categorical_log_probs(distribution):
    """Normalised log-probabilities over the categories, exact (``-inf`` for a zero probability)."""
    if isinstance(distribution, (OneHotCategorical, Bernoulli)):
        return distribution._log_probs
    if isinstance(distribution, CategoricalLogits):
        return jax.nn.log_softmax(distribution.logits, axis=-1)
    if isinstance(distribution, CategoricalProbs):
        return safe_log(distribution.probs)
    if isinstance(distribution, BernoulliLogits):
        logits = distribution.logits
        return jnp.stack([jax.nn.log_sigmoid(-logits), jax.nn.log_sigmoid(logits)], axis=-1)
    return jnp.stack([safe_log(1 - distribution.probs), safe_log(distribution.probs)], axis=-1)


def _kl_categorical(p, q):
    return categorical_kl(_categorical_log_probs(p), _categorical_log_probs(q))


for _p, _q in [
    (OneHotCategorical, OneHotCategorical),
    (OneHotCategorical, CategoricalLogits),
    (OneHotCategorical, CategoricalProbs),
    (CategoricalLogits, OneHotCategorical),
    (CategoricalProbs, OneHotCategorical),
    (Bernoulli, Bernoulli),
    (Bernoulli, BernoulliLogits),
    (Bernoulli, BernoulliProbs),
    (BernoulliLogits, Bernoulli),
    (BernoulliProbs, Bernoulli),
]:
    kl_divergence.register(_p, _q)(_kl_categorical)
