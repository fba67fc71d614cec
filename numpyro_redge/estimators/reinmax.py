import dataclasses
import functools

import jax
import jax.numpy as jnp

from numpyro_redge._math import (
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
)
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent
from redge_core.checks import check_positive
from redge_core.estimator_options import python_hyperparameters


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _reinmax(logits, uniform, temperature):
    return _reinmax_forward(logits, uniform, temperature)[0]


def _reinmax_forward(logits, uniform, temperature):
    logits_c = logits.astype(compute_dtype(logits.dtype))
    probs = jax.nn.softmax(logits_c, axis=-1)
    index = categorical_from_uniform(probs, uniform)
    return one_hot(index, logits), (logits_c, probs, index, uniform)


def _reinmax_backward(temperature, residuals, grad_sample):
    logits_c, probs, index, uniform = residuals
    cotangent = grad_sample.astype(probs.dtype)
    tempered = None if temperature == 1.0 else jax.nn.softmax(logits_c / temperature, axis=-1)
    return reinmax_vjp(probs, tempered, index, cotangent).astype(grad_sample.dtype), zero_cotangent(uniform)


def reinmax_vjp(probs, tempered, index, cotangent):
    """ReinMax's :math:`2J(\\pi_{1/2})g - \\tfrac12 J(\\pi_0)g` in closed form (derived in
    ``pyro_redge.estimators.reinmax.reinmax_vjp``; ``tempered=None`` at temperature 1): a few passes
    over the classes, summing to zero by construction, exactly 0 where the probability is 0."""
    picked = jnp.take_along_axis(cotangent, index, axis=-1)
    mean_under_probs = (probs * cotangent).sum(-1, keepdims=True)
    rows = jnp.arange(probs.shape[-1]) == index
    if tempered is None:
        return 0.5 * probs * (cotangent - picked) + jnp.where(rows, 0.5 * (picked - mean_under_probs), 0.0)
    half = 0.5 * ((tempered * cotangent).sum(-1, keepdims=True) + picked)
    grad = tempered * (cotangent - half) - 0.5 * probs * (cotangent - mean_under_probs)
    return grad + jnp.where(rows, picked - half, 0.0)


_reinmax.defvjp(_reinmax_forward, _reinmax_backward)


@dataclasses.dataclass(frozen=True)
class ReinMax(Estimator):
    r"""ReinMax: a hard sample :math:`D \sim \mathrm{Cat}(\pi_0)`, :math:`\pi_0 = \mathrm{softmax}\,\theta`,
    whose backward pass is a second-order (Heun) approximation of the gradient,

    .. math:: \nabla_\theta \approx 2\,J(\pi_{1/2})\,g - \tfrac12\,J(\pi_0)\,g,
        \qquad \pi_{1/2} = \tfrac12\left(\mathrm{softmax}(\theta/\tau) + D\right),

    with :math:`J(\pi) = \mathrm{diag}(\pi) - \pi\pi^\top` and :math:`g` the incoming gradient.
    At :math:`\tau = 1` it is unbiased for functions linear in :math:`D` and exact to second
    order for quadratic ones. Follows the reference package ``reinmax`` 0.1.0.

    :param float temperature: the temperature :math:`\tau > 0` of :math:`\pi_{1/2}`.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import ReinMax
    >>> key, logits = jax.random.PRNGKey(0), jnp.zeros((2, 3))
    >>> sample = ReinMax()(key, logits)
    >>> sample.shape, sample.sum(-1).tolist()
    ((2, 3), [1.0, 1.0])
    >>> grad = jax.grad(lambda theta: (ReinMax()(key, theta) * jnp.array([0.0, 1.0, 2.0])).sum())(logits)
    >>> grad.shape, bool(jnp.abs(grad).sum() > 0)
    ((2, 3), True)

    **References**

    [1] `Bridging Discrete and Backpropagation: Straight-Through and Beyond`,
        Liyuan Liu, Chengyu Dong, Xiaodong Liu, Bin Yu, Jianfeng Gao (NeurIPS 2023)
    """

    temperature: float = 1.0

    def __post_init__(self):
        python_hyperparameters(self)
        check_positive("temperature", self.temperature)

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        return (sample_uniform(key, logits, self._noise_dtype(logits)),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _reinmax(jnp.asarray(logits), uniform, float(self.temperature)))
