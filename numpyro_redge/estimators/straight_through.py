import dataclasses

import jax
import jax.numpy as jnp

from numpyro_redge._math import (
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
    softmax_vjp,
)
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent


@jax.custom_vjp
def _straight_through(logits, uniform):
    return _straight_through_forward(logits, uniform)[0]


def _straight_through_forward(logits, uniform):
    probs = jax.nn.softmax(logits.astype(compute_dtype(logits.dtype)), axis=-1)
    return one_hot(categorical_from_uniform(probs, uniform), logits), (probs, uniform)


def _straight_through_backward(residuals, grad_sample):
    probs, uniform = residuals
    grad = softmax_vjp(probs, grad_sample.astype(probs.dtype)).astype(grad_sample.dtype)
    return grad, zero_cotangent(uniform)


_straight_through.defvjp(_straight_through_forward, _straight_through_backward)


@dataclasses.dataclass(frozen=True)
class StraightThrough(Estimator):
    r"""Straight-through estimator: a hard sample :math:`D \sim \mathrm{Cat}(\mathrm{softmax}\,\theta)`
    whose backward pass is the Jacobian of the probabilities,

    .. math:: \frac{\partial D}{\partial \theta} \approx J(\pi) = \mathrm{diag}(\pi) - \pi\pi^\top,
        \qquad \pi = \mathrm{softmax}(\theta).

    Unbiased for functions linear in :math:`D`; biased otherwise. The sample is drawn by inverse
    CDF with one uniform per row (no Gumbel draw per category).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import StraightThrough
    >>> key, logits = jax.random.PRNGKey(0), jnp.array([0.5, -1.0, 2.0])
    >>> cost = jnp.array([1.0, 2.0, 3.0])
    >>> sample = StraightThrough()(key, logits)
    >>> float(sample.sum()), set(sample.tolist()) <= {0.0, 1.0}
    (1.0, True)
    >>> grad = jax.grad(lambda theta: StraightThrough()(key, theta) @ cost)(logits)
    >>> probs = jax.nn.softmax(logits)
    >>> bool(jnp.allclose(grad, probs * (cost - probs @ cost)))  # J(pi) cost, whatever the sample
    True

    **References**

    [1] `Estimating or Propagating Gradients Through Stochastic Neurons for Conditional Computation`,
        Yoshua Bengio, Nicholas Léonard, Aaron Courville (2013)
    """

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        return (sample_uniform(key, logits, self._noise_dtype(logits)),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _straight_through(jnp.asarray(logits), uniform))
