import dataclasses
import functools

import jax
import jax.numpy as jnp

from numpyro_redge._math import compute_dtype, log_elementary_symmetric, subset_from_uniform
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent
from numpyro_redge.estimators.straight_through import StraightThrough


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _marginal_straight_through(logits, uniform, k):
    return _marginal_straight_through_forward(logits, uniform, k)[0]


def _marginal_straight_through_forward(logits, uniform, k):
    logits_c = logits.astype(compute_dtype(logits.dtype))
    return subset_from_uniform(logits_c, k, uniform).astype(logits.dtype), (logits_c, uniform)


@functools.partial(jax.jit, static_argnums=(2,))
def _marginals_vjp(logits, cotangent, k):
    # Compiled once per shape and k: eagerly, the second-order scan would be traced on every call.
    def marginals(x):
        return jax.grad(lambda y: log_elementary_symmetric(y, k).sum())(x)

    _, pullback = jax.vjp(marginals, logits)
    return pullback(cotangent)[0]


def _marginal_straight_through_backward(k, residuals, grad_sample):
    logits_c, uniform = residuals
    grad = _marginals_vjp(logits_c, grad_sample.astype(logits_c.dtype), k)
    return grad.astype(grad_sample.dtype), zero_cotangent(uniform)


_marginal_straight_through.defvjp(_marginal_straight_through_forward, _marginal_straight_through_backward)


@dataclasses.dataclass(frozen=True)
class MarginalStraightThrough(Estimator):
    r"""The exact-marginal straight-through estimator (SIMPLE): an exact sample of the k-subset
    distribution :math:`p(z) \propto \exp\langle z, \theta\rangle` forward, and the gradient of the
    exact marginals backward,

    .. math:: \frac{\partial z}{\partial \theta} \approx \frac{\partial \mu}{\partial \theta},
        \qquad \mu = \nabla_\theta \log e_k(e^{\theta}) = \mathbb{E}_p[z].

    For a categorical (``k = 1``) the marginals are :math:`\mathrm{softmax}\,\theta` and this is
    :class:`StraightThrough` exactly (same noise: one uniform per row, inverse-CDF draw); for
    ``k > 1`` the noise is one uniform per item, consumed by the exact sampler of
    :class:`~numpyro_redge.KSubset`.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import MarginalStraightThrough
    >>> key = jax.random.PRNGKey(0)
    >>> subset = MarginalStraightThrough()(key, jnp.zeros(6), k=3)  # an exact draw
    >>> float(subset.sum())
    3.0
    >>> grad = jax.grad(lambda theta: MarginalStraightThrough()(key, theta, k=3) @ jnp.arange(6.0))(jnp.zeros(6))
    >>> bool(jnp.abs(grad).sum() > 0)
    True

    **References**

    [1] `SIMPLE: A Gradient Estimator for k-Subset Sampling`, Kareem Ahmed, Zhe Zeng,
        Mathias Niepert, Guy Van den Broeck (ICLR 2023)
    """

    supports_subsets = True
    exact_subsets = True

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        if k == 1:
            return StraightThrough().sample_noise(key, logits)
        return (jax.random.uniform(key, jnp.shape(logits), dtype=self._noise_dtype(logits)),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        if k == 1:
            return StraightThrough().apply(logits, uniform)
        return invalid_rows_to_nan(logits, _marginal_straight_through(jnp.asarray(logits), uniform, k))
