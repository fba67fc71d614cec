"""Exact KL divergences between our distributions and the host's matching discrete ones, registered
with :func:`torch.distributions.kl.register_kl` so that ``kl_divergence`` and Pyro's
:class:`~pyro.infer.TraceMeanField_ELBO` use them analytically."""

import torch
from torch.distributions import Bernoulli as HostBernoulli
from torch.distributions import Categorical as HostCategorical
from torch.distributions import OneHotCategorical as HostOneHotCategorical
from torch.distributions import kl_divergence, register_kl
from torch.nn.functional import logsigmoid

from pyro_redge._math import categorical_kl, safe_log
from pyro_redge.distributions import Bernoulli, KSubset, OneHotCategorical, Relaxed

__all__ = ["kl_divergence"]


def _categorical_log_probs(distribution):
    """Normalised log-probabilities over the categories, exact (``-inf`` for a zero probability)."""
    if isinstance(distribution, (OneHotCategorical, Bernoulli)):
        return distribution._log_probs
    if isinstance(distribution, HostOneHotCategorical):
        distribution = distribution._categorical
    if isinstance(distribution, HostBernoulli):
        if "logits" in distribution.__dict__:
            logits = distribution.logits
            return torch.stack([logsigmoid(-logits), logsigmoid(logits)], dim=-1)
        return torch.stack([safe_log(1 - distribution.probs), safe_log(distribution.probs)], dim=-1)
    if "logits" in distribution.__dict__:
        return distribution.logits
    return safe_log(distribution.probs)


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


@register_kl(KSubset, KSubset)
def _kl_k_subset(p, q):
    r"""Exact, through the marginals: :math:`\langle \mu_p, \theta_p - \theta_q\rangle
    - \log e_k(\theta_p) + \log e_k(\theta_q)`."""
    if p.k != q.k or p.event_shape != q.event_shape:
        raise ValueError(f"KL between k-subset distributions needs the same n and k, got {p.event_shape[0]}, {p.k} and {q.event_shape[0]}, {q.k}")
    return (p.marginals * (p.logits - q.logits)).sum(-1) - p.log_normalizer + q.log_normalizer


_HOST_COUNTS = (
    torch.distributions.Poisson,
    torch.distributions.Binomial,
    torch.distributions.Geometric,
    torch.distributions.NegativeBinomial,
)
register_kl(Relaxed, Relaxed)(_kl_counts)
for _host in _HOST_COUNTS:
    register_kl(Relaxed, _host)(_kl_counts)
    register_kl(_host, Relaxed)(_kl_counts)

for _p, _q in [
    (OneHotCategorical, OneHotCategorical),
    (OneHotCategorical, HostOneHotCategorical),
    (HostOneHotCategorical, OneHotCategorical),
    (OneHotCategorical, HostCategorical),
    (HostCategorical, OneHotCategorical),
    (Bernoulli, Bernoulli),
    (Bernoulli, HostBernoulli),
    (HostBernoulli, Bernoulli),
]:
    register_kl(_p, _q)(_kl_categorical)
