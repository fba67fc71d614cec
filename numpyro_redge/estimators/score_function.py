"""Unbiased multi-sample estimators: markers that make a site non-reparameterized, whose gradient
:class:`~numpyro_redge.infer.ScoreFunction_ELBO` forms over the particles."""

import contextlib
import contextvars
import dataclasses

import jax
import jax.numpy as jnp

from numpyro_redge._math import (
    categorical_from_tree,
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
    subset_from_uniform,
    tree_log_odds,
)
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan


class _AntitheticPair:
    """The particle being traced by ScoreFunction_ELBO: the key its pair shares, whether it is the
    pair's second member, and how many DisARM draws it has made (the i-th draw of both members
    uses the same uniforms)."""

    def __init__(self, key, second):
        self.key, self.second, self.draws = key, second, 0


_antithetic_pair = contextvars.ContextVar("antithetic_pair", default=None)


@contextlib.contextmanager
def antithetic_pair(key, second):
    """Inside, :class:`DisARM` draws its uniforms from ``key`` (shared by the two members of a pair
    of particles), as ``1 − u`` when ``second``: the sampling half of
    :class:`~numpyro_redge.infer.ScoreFunction_ELBO`."""
    token = _antithetic_pair.set(_AntitheticPair(key, second))
    try:
        yield
    finally:
        _antithetic_pair.reset(token)


def _exact_sample(logits, uniform, k=1):
    """The one-hot inverse-CDF draw of ``Cat(softmax logits)`` (``k = 1``), or the exact k-subset
    draw of :func:`~numpyro_redge._math.subset_from_uniform`, without a gradient."""
    logits = jax.lax.stop_gradient(jnp.asarray(logits))
    if k > 1:
        sample = subset_from_uniform(logits.astype(compute_dtype(logits.dtype)), k, uniform).astype(logits.dtype)
    else:
        probs = jax.nn.softmax(logits.astype(compute_dtype(logits.dtype)), axis=-1)
        sample = one_hot(categorical_from_uniform(probs, uniform), logits)
    return jax.lax.stop_gradient(invalid_rows_to_nan(logits, sample))


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
    particles of :class:`~numpyro_redge.infer.ScoreFunction_ELBO` is baselined by the mean of the
    others' downstream costs,

    .. math:: \hat g = \frac{1}{S} \sum_{i=1}^{S} \Big(f(z_i) - \frac{1}{S-1} \sum_{j \ne i} f(z_j)\Big)
        \nabla_\theta \log q_\theta(z_i),

    unbiased for any discrete site (categoricals, Bernoullis, counts, k-subsets), as the baseline of a particle
    is independent of its sample. Samples are exact draws, by inverse CDF. Under another ELBO a site
    with this estimator is an ordinary non-reparameterized site (``Trace_ELBO``: REINFORCE without a
    baseline; ``TraceGraph_ELBO``: its own baselines).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import RLOO, OneHotCategorical
    >>> site = OneHotCategorical(logits=jnp.zeros(3), estimator=RLOO())
    >>> value = site.sample(jax.random.PRNGKey(0))
    >>> site.has_rsample, float(value.sum())
    (False, 1.0)

    In a guide, fitted by ``ScoreFunction_ELBO``::

        guide_site = OneHotCategorical(logits=phi, estimator=RLOO())
        svi = SVI(model, guide, optax.adam(0.01), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `Buy 4 REINFORCE Samples, Get a Baseline for Free!`, Wouter Kool, Herke van Hoof, Max
        Welling (ICLR 2019 workshop)
    [2] `Variational Inference for Monte Carlo Objectives`,
        Andriy Mnih, Danilo Rezende (ICML 2016)
    """

    supports_subsets = True
    exact_subsets = True

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        if k > 1:  # one uniform per item, for the exact k-subset sampler
            return (jax.random.uniform(key, jnp.shape(logits), dtype=self._noise_dtype(logits)),)
        return (sample_uniform(key, logits, self._noise_dtype(logits)),)


@dataclasses.dataclass(frozen=True)
class DisARM(ScoreFunctionEstimator):
    r"""DisARM for Bernoulli and categorical sites: the particles of
    :class:`~numpyro_redge.infer.ScoreFunction_ELBO` come in antithetic pairs. A bit is drawn as
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

    For a :class:`~numpyro_redge.Bernoulli` or a :class:`~numpyro_redge.OneHotCategorical` whose logits
    depend on parameters and data only (not on other latent draws, which differ between the members
    of a pair); ``num_particles`` must be even; not for counts or k-subsets (use
    :class:`RLOO`). Outside ``ScoreFunction_ELBO`` the uniforms are independent and the site is an
    ordinary non-reparameterized one.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import Bernoulli, DisARM
    >>> site = Bernoulli(logits=jnp.zeros(4), estimator=DisARM())
    >>> value = site.sample(jax.random.PRNGKey(0))
    >>> site.has_rsample, value.shape, set(value.tolist()) <= {0.0, 1.0}
    (False, (4,), True)
    >>> from numpyro_redge import OneHotCategorical
    >>> OneHotCategorical(logits=jnp.zeros((2, 5)), estimator=DisARM()).sample(jax.random.PRNGKey(1)).sum(-1)
    Array([1., 1.], dtype=float32)

    In a guide, fitted by ``ScoreFunction_ELBO``::

        with numpyro.plate("data", len(x)):
            numpyro.sample("bits", Bernoulli(logits=encoder(x), estimator=DisARM()).to_event(1))
            numpyro.sample("class", OneHotCategorical(logits=classifier(x), estimator=DisARM()))
        svi = SVI(model, guide, optax.adam(0.01), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `DisARM: An Antithetic Gradient Estimator for Binary Latent Variables`, Zhe Dong, Andriy
        Mnih, George Tucker (NeurIPS 2020)
    [2] `Coupled Gradient Estimators for Discrete Latent Variables`, Zhe Dong, Andriy Mnih,
        George Tucker (NeurIPS 2021)
    [3] `ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks`, Mingzhang Yin,
        Mingyuan Zhou (ICLR 2019)
    """

    _draw_reads_context = True  # the antithetic pair of ScoreFunction_ELBO
    supports_counts = False

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        dtype = self._noise_dtype(logits)
        nodes = jnp.shape(logits)[:-1] + (jnp.shape(logits)[-1] - 1,)
        pair = _antithetic_pair.get()
        if pair is None:
            return (jax.random.uniform(key, nodes, dtype=dtype),)
        uniform = jax.random.uniform(jax.random.fold_in(pair.key, pair.draws), nodes, dtype=dtype)
        pair.draws += 1
        return (jnp.where(pair.second, 1 - uniform, uniform),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        logits = jax.lax.stop_gradient(jnp.asarray(logits))
        log_odds = tree_log_odds(logits.astype(compute_dtype(logits.dtype)))
        sample = one_hot(categorical_from_tree(log_odds, uniform.astype(log_odds.dtype)), logits)
        return jax.lax.stop_gradient(invalid_rows_to_nan(logits, sample))
