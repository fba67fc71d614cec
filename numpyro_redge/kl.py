"""Exact KL divergences between our distributions and NumPyro's matching discrete ones,
registered with NumPyro's ``multipledispatch`` :func:`numpyro.distributions.kl.kl_divergence`, so
that ``TraceMeanField_ELBO`` uses them analytically."""

import jax
import jax.numpy as jnp
import numpyro.distributions as host
from numpyro.distributions import BernoulliLogits, BernoulliProbs, CategoricalLogits, CategoricalProbs
from numpyro.distributions.kl import kl_divergence

from numpyro_redge._math import categorical_kl, safe_log
from numpyro_redge.distributions import Bernoulli, KSubset, OneHotCategorical, Relaxed

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


def _count_log_pmf_on(distribution, values):
    """Log-pmf on a grid of counts (grid on the last axis), ``-inf`` off the support."""
    if isinstance(distribution, Relaxed):
        return distribution.log_prob_on_grid(values)
    return Relaxed(distribution)._grid_log_pmf(values)


def _kl_counts(p, q):
    r"""Exact :math:`\sum_k p(k) \log(p(k)/q(k))` over the support of ``p``: ours is truncated,
    so the sum is exact; a host count distribution is summed up to where its upper tail drops
    below ``Relaxed``'s default ``tail_mass`` (1e-6), exact to that dropped mass."""
    relaxed_p = p if isinstance(p, Relaxed) else Relaxed(p)
    values, _ = relaxed_p._support_and_log_pmf()
    return categorical_kl(_count_log_pmf_on(p, values), _count_log_pmf_on(q, values))


@kl_divergence.register(KSubset, KSubset)
def _kl_k_subset(p, q):
    r"""Exact, through the marginals: :math:`\langle \mu_p, \theta_p - \theta_q\rangle
    - \log e_k(\theta_p) + \log e_k(\theta_q)`."""
    if p.k != q.k or p.event_shape != q.event_shape:
        raise ValueError(f"KL between k-subset distributions needs the same n and k, got {p.event_shape[0]}, {p.k} and {q.event_shape[0]}, {q.k}")
    return (p.marginals * (p.logits - q.logits)).sum(-1) - p.log_normalizer + q.log_normalizer


# NumPyro's NegativeBinomialProbs/Logits are GammaPoisson subclasses.
_HOST_COUNTS = (
    host.Poisson,
    host.BinomialProbs,
    host.BinomialLogits,
    host.GeometricProbs,
    host.GeometricLogits,
    host.GammaPoisson,
)
kl_divergence.register(Relaxed, Relaxed)(_kl_counts)
for _host in _HOST_COUNTS:
    kl_divergence.register(Relaxed, _host)(_kl_counts)
    kl_divergence.register(_host, Relaxed)(_kl_counts)

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
