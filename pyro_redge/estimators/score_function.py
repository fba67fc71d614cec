"""Unbiased multi-sample estimators: markers that make a site non-reparameterized, whose gradient
:class:`~pyro_redge.infer.ScoreFunction_ELBO` forms over the particles."""

import contextlib
import contextvars
import dataclasses

import torch

from pyro_redge._math import (
    categorical_from_tree,
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
    subset_from_uniform,
    tree_log_odds,
)
from pyro_redge.estimators.base import Estimator, invalid_rows_to_nan
from redge_core.estimator_options import check_antithetic_particles

# The number of particles of the vectorized guide being traced by ScoreFunction_ELBO (their axis
# is the leftmost batch axis), or None outside it.
_antithetic_particles = contextvars.ContextVar("antithetic_particles", default=None)


@contextlib.contextmanager
def antithetic_particles(num_particles):
    """Inside, :class:`DisARM` draws its uniforms in antithetic pairs along the leftmost batch axis
    of size ``num_particles`` (particle ``i`` and ``i + num_particles / 2`` share ``u`` and
    ``1 − u``): the sampling half of :class:`~pyro_redge.infer.ScoreFunction_ELBO`."""
    token = _antithetic_particles.set(num_particles)
    try:
        yield
    finally:
        _antithetic_particles.reset(token)


def _exact_sample(logits, uniform, k=1):
    """The one-hot inverse-CDF draw of ``Cat(softmax logits)`` (``k = 1``), or the exact k-subset
    draw of :func:`~pyro_redge._math.subset_from_uniform`, without a gradient."""
    with torch.no_grad():
        logits = logits.detach()
        if k > 1:
            sample = subset_from_uniform(logits.to(compute_dtype(logits.dtype)), k, uniform).to(logits.dtype)
        else:
            probs = torch.softmax(logits.to(compute_dtype(logits.dtype)), dim=-1)
            sample = one_hot(categorical_from_uniform(probs, uniform), logits)
        return invalid_rows_to_nan(logits, sample)


class ScoreFunctionEstimator(Estimator):
    """An estimator without a pathwise gradient: its samples are exact draws (no gradient flows
    through them) and a distribution that uses it is not reparameterized (``has_rsample`` is
    ``False``), so the ELBO forms the gradient from the score :math:`\\nabla \\log q(z)`."""

    pathwise = False

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        return _exact_sample(logits, uniform, k)


@dataclasses.dataclass(frozen=True)
class RLOO(ScoreFunctionEstimator):
    r"""REINFORCE with a leave-one-out baseline over the particles (RLOO): each of the :math:`S`
    particles of :class:`~pyro_redge.infer.ScoreFunction_ELBO` is baselined by the mean of the
    others' downstream costs,

    .. math:: \hat g = \frac{1}{S} \sum_{i=1}^{S} \Big(f(z_i) - \frac{1}{S-1} \sum_{j \ne i} f(z_j)\Big)
        \nabla_\theta \log q_\theta(z_i),

    unbiased for any discrete site (categoricals, Bernoullis, counts, k-subsets), as the baseline of a particle
    is independent of its sample. Samples are exact draws, by inverse CDF. Under another ELBO a site
    with this estimator is an ordinary non-reparameterized site (``Trace_ELBO``: REINFORCE without a
    baseline; ``TraceGraph_ELBO``: its own baselines).

    **Example**

    >>> import torch
    >>> from pyro_redge import RLOO, OneHotCategorical
    >>> site = OneHotCategorical(logits=torch.zeros(3, requires_grad=True), estimator=RLOO())
    >>> value = site.sample()
    >>> site.has_rsample, value.sum().item(), value.requires_grad
    (False, 1.0, False)

    In a guide, fitted by ``ScoreFunction_ELBO``::

        guide_site = OneHotCategorical(logits=phi, estimator=RLOO())
        svi = SVI(model, guide, Adam({"lr": 0.01}), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `Buy 4 REINFORCE Samples, Get a Baseline for Free!`, Wouter Kool, Herke van Hoof, Max
        Welling (ICLR 2019 workshop)
    [2] `Variational Inference for Monte Carlo Objectives`,
        Andriy Mnih, Danilo Rezende (ICML 2016)
    """

    supports_subsets = True
    exact_subsets = True

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        if k > 1:  # one uniform per item, for the exact k-subset sampler
            return (torch.rand(logits.shape, dtype=self._noise_dtype(logits), device=logits.device),)
        return (sample_uniform(logits, self._noise_dtype(logits)),)


@dataclasses.dataclass(frozen=True)
class DisARM(ScoreFunctionEstimator):
    r"""DisARM for Bernoulli and categorical sites: the particles of
    :class:`~pyro_redge.infer.ScoreFunction_ELBO` come in antithetic pairs. A bit is drawn as
    :math:`b = 1[u < \sigma(\theta)]` and its partner as :math:`\tilde b = 1[1 - u < \sigma(\theta)]`
    (one uniform per pair), and each pair gives

    .. math:: \hat g = \tfrac12 \big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b}\,
        1[b \ne \tilde b]\,\sigma(|\theta|)\,\nabla\theta,

    unbiased, and zero whenever the pair agrees. A categorical over :math:`K` categories is drawn
    through a binary tree over its categories (:mod:`redge_core.category_tree`): :math:`K - 1`
    independent bits, one per node, with the log-odds :math:`\phi_n` of the mass right of the node
    against the mass left of it, so the draw is exactly :math:`\mathrm{Cat}(\mathrm{softmax}\,\theta)`
    and its depth :math:`\lceil \log_2 K \rceil`. Both members of a pair use the same uniforms (one
    as :math:`1 - u`); the pair's estimate is DisARM's term above at the node where their paths
    part, plus on each path's own nodes below it the score term
    :math:`\tfrac12 (f - c)(b_n - \sigma(\phi_n))\nabla\phi_n` with the leave-one-out baseline
    :math:`c`, the mean cost of the other particles (with one pair, the partner's), which does not
    depend on that node's uniform: the binary-tree DisARM of Dong, Mnih and Tucker (2021). For two
    categories it is the binary DisARM. Unbiased; measured against RLOO in
    :doc:`/choosing_an_estimator`.

    For a :class:`~pyro_redge.Bernoulli` or a :class:`~pyro_redge.OneHotCategorical` whose logits
    depend on parameters and data only (not on other latent draws, which differ between the members
    of a pair); ``num_particles`` must be even; not for counts or k-subsets (use
    :class:`RLOO`). Outside ``ScoreFunction_ELBO`` the uniforms are independent and the site is an
    ordinary non-reparameterized one.

    **Example**

    >>> import torch
    >>> from pyro_redge import Bernoulli, DisARM
    >>> site = Bernoulli(logits=torch.zeros(4), estimator=DisARM())
    >>> value = site.sample()
    >>> site.has_rsample, value.shape, set(value.tolist()) <= {0.0, 1.0}
    (False, torch.Size([4]), True)
    >>> from pyro_redge import OneHotCategorical
    >>> OneHotCategorical(logits=torch.zeros(2, 5), estimator=DisARM()).sample().sum(-1)
    tensor([1., 1.])

    In a guide, fitted by ``ScoreFunction_ELBO``::

        with pyro.plate("data", len(x)):
            pyro.sample("bits", Bernoulli(logits=encoder(x), estimator=DisARM()).to_event(1))
            pyro.sample("class", OneHotCategorical(logits=classifier(x), estimator=DisARM()))
        svi = SVI(model, guide, Adam({"lr": 0.01}), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `DisARM: An Antithetic Gradient Estimator for Binary Latent Variables`, Zhe Dong, Andriy
        Mnih, George Tucker (NeurIPS 2020)
    [2] `Coupled Gradient Estimators for Discrete Latent Variables`, Zhe Dong, Andriy Mnih,
        George Tucker (NeurIPS 2021)
    [3] `ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks`, Mingzhang Yin,
        Mingyuan Zhou (ICLR 2019)
    """

    supports_counts = False

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        dtype = self._noise_dtype(logits)
        nodes = logits.shape[:-1] + (logits.shape[-1] - 1,)
        particles = _antithetic_particles.get()
        if particles is None:
            return (torch.rand(nodes, dtype=dtype, device=logits.device),)
        check_antithetic_particles(particles, tuple(logits.shape[:-1]))
        half = torch.rand((particles // 2,) + nodes[1:], dtype=dtype, device=logits.device)
        return (torch.cat([half, 1 - half], dim=0),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        with torch.no_grad():
            logits = logits.detach()
            log_odds = tree_log_odds(logits.to(compute_dtype(logits.dtype)))
            sample = one_hot(categorical_from_tree(log_odds, uniform.to(log_odds.dtype)), logits)
            return invalid_rows_to_nan(logits, sample)
