import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from numpyro_redge._math import compute_dtype, sample_gamma, sample_gumbel, top_k_one_hot
from numpyro_redge.distributed import all_reduce_sum
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent
from redge_core.estimator_options import SUM_OF_GAMMA_TERMS, check_imle, python_hyperparameters


def sample_perturbation(estimator, key, logits, k):
    """The perturbation noise ε of perturb-and-MAP (without the temperature), with a leading axis of
    ``samples`` when ``samples > 1``: standard Gumbel, or Sum-of-Gamma
    :math:`\\frac1k\\left(\\sum_{i=1}^{s} \\mathrm{Gamma}(1/k, k/i) - \\log s\\right)`, s = 10."""
    shape = ((estimator.samples,) if estimator.samples > 1 else ()) + tuple(jnp.shape(logits))
    dtype = compute_dtype(jnp.result_type(logits))
    if estimator.noise == "gumbel":
        return sample_gumbel(key, shape, dtype)
    # One Gamma draw of all s terms (one rejection loop to compile, not s), scaled by k / i.
    scales = jnp.asarray([k / i for i in range(1, SUM_OF_GAMMA_TERMS + 1)], dtype).reshape((-1,) + (1,) * len(shape))
    total = (sample_gamma(key, 1.0 / k, (SUM_OF_GAMMA_TERMS,) + shape, dtype) * scales).sum(0)
    return (total - math.log(SUM_OF_GAMMA_TERMS)) / k


def observed_density(difference, dtype, group=None):
    """The gradient density of one backward pass: the mean number of nonzero entries of one
    sample's finite difference (nonzero entries × items / entries), in ``dtype``, over the mapped
    axis ``group`` (see :func:`numpyro_redge.distributed.reduce_statistics`). Formed from exact
    integers and one division, so that every host and every process get the same number."""
    nonzero = all_reduce_sum((difference != 0).sum() * difference.shape[-1], group)
    entries = all_reduce_sum(difference.size, group) if group is not None else difference.size
    return nonzero.astype(dtype) / entries


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def perturb_and_map(logits, noise, beta, estimator, k, group=None):
    """Forward ``MAP(θ + τε)``; backward the estimator's finite difference of MAPs, averaged over
    the samples. ``beta`` is AIMLE's scale (unused by IMLE); its cotangent is the gradient density
    observed in the backward pass (a report for ``AIMLE.update_state``, not a derivative).
    ``group``: the mapped axis over which AIMLE's statistics are summed, or ``None``."""
    return _perturb_and_map_forward(logits, noise, beta, estimator, k, group)[0]


def _perturb_and_map_forward(logits, noise, beta, estimator, k, group=None):
    logits_c = logits.astype(compute_dtype(logits.dtype))
    sample = top_k_one_hot(logits_c + estimator.temperature * noise, k)
    return sample.astype(logits.dtype), (logits_c, noise, beta, sample)


def _perturb_and_map_backward(estimator, k, group, residuals, grad_sample):
    logits_c, noise, beta, sample = residuals
    difference, step = estimator._finite_difference(
        logits_c, noise, beta, sample, grad_sample.astype(logits_c.dtype), k, group
    )
    grad = difference / step
    if noise.ndim > logits_c.ndim:
        grad = grad.mean(0)
    density = observed_density(difference, jnp.result_type(beta), group).reshape(jnp.shape(beta))
    return grad.astype(grad_sample.dtype), zero_cotangent(noise), density


perturb_and_map.defvjp(_perturb_and_map_forward, _perturb_and_map_backward)


class PerturbAndMAP(Estimator):
    """What IMLE and AIMLE share: the noise, the MAP forward pass and the sample axis. A subclass
    defines ``_finite_difference`` (the backward pass) and the fields ``temperature``, ``noise``
    and ``samples``."""

    supports_subsets = True

    @property
    def one_sample_per_call(self):
        return self.samples == 1

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        return (sample_perturbation(self, key, logits, k),)

    def apply(self, logits, noise, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, perturb_and_map(jnp.asarray(logits), noise, jnp.zeros(()), self, k))


@dataclasses.dataclass(frozen=True)
class IMLE(PerturbAndMAP):
    r"""Implicit maximum-likelihood estimation (perturb-and-MAP): the hard sample is the MAP of the
    perturbed logits, :math:`z = \mathrm{MAP}(\theta + \tau\varepsilon)` (argmax for a
    categorical, top-k for a k-subset), and the backward pass is the finite difference of MAPs
    towards the target distribution :math:`\theta' = \theta - \lambda g`, with the same noise,

    .. math:: \nabla_\theta \approx \frac{1}{\lambda}\left(\mathrm{MAP}(\theta + \tau\varepsilon)
        - \mathrm{MAP}(\theta - \lambda g + \tau\varepsilon)\right).

    With Gumbel noise and a categorical, :math:`z` is an exact draw of
    :math:`\mathrm{Cat}(\mathrm{softmax}(\theta/\tau))`; for k-subsets, perturb-and-MAP samples are
    *not* the exponential family's law (the deviation is measured by the tests).

    :param float temperature: the noise temperature :math:`\tau > 0`.
    :param float lam: the target step :math:`\lambda > 0`.
    :param str noise: ``"gumbel"`` or ``"sum_of_gamma"``.
    :param int samples: the number of noise draws :math:`S \ge 1`; with :math:`S > 1` the output
        has a leading axis of size :math:`S` and the backward pass averages over it.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import IMLE
    >>> key = jax.random.PRNGKey(0)
    >>> logits = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    >>> subset = IMLE(temperature=1.0, lam=10.0)(key, logits, k=2)  # top-2 of the perturbed logits
    >>> subset.shape, subset.sum(-1).tolist()
    ((4, 6), [2.0, 2.0, 2.0, 2.0])
    >>> jax.grad(lambda theta: (IMLE()(key, theta, k=2) * jnp.arange(6.0)).sum())(logits).shape
    (4, 6)

    **References**

    [1] `Implicit MLE: Backpropagating Through Discrete Exponential Family Distributions`,
        Mathias Niepert, Pasquale Minervini, Luca Franceschi (NeurIPS 2021)
    """

    temperature: float = 1.0
    lam: float = 10.0
    noise: str = "gumbel"
    samples: int = 1

    def __post_init__(self):
        python_hyperparameters(self)
        check_imle(self.temperature, self.lam, self.noise, self.samples)

    def _finite_difference(self, logits, noise, beta, sample, grad_sample, k, group=None):
        target = top_k_one_hot(logits - self.lam * grad_sample + self.temperature * noise, k)
        return sample - target, self.lam
