import dataclasses
import functools

import jax
import jax.numpy as jnp

from numpyro_redge._math import compute_dtype, one_hot, sample_gumbel, softmax_vjp
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent
from redge_core.checks import check_positive
from redge_core.estimator_options import python_hyperparameters


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _gumbel_softmax(logits, gumbel, temperature):
    return _gumbel_softmax_forward(logits, gumbel, temperature)[0]


def _gumbel_softmax_forward(logits, gumbel, temperature):
    perturbed = logits.astype(compute_dtype(logits.dtype)) + gumbel
    relaxed = jax.nn.softmax(perturbed / temperature, axis=-1)
    sample = one_hot(jnp.argmax(perturbed, axis=-1, keepdims=True), logits)
    return sample, (relaxed, gumbel)


def _gumbel_softmax_backward(temperature, residuals, grad_sample):
    relaxed, gumbel = residuals
    grad = softmax_vjp(relaxed, grad_sample.astype(relaxed.dtype)) / temperature
    return grad.astype(grad_sample.dtype), zero_cotangent(gumbel)


_gumbel_softmax.defvjp(_gumbel_softmax_forward, _gumbel_softmax_backward)


@dataclasses.dataclass(frozen=True)
class GumbelSoftmax(Estimator):
    r"""Straight-through Gumbel-softmax: the hard sample :math:`D = \mathrm{onehot}(\arg\max(\theta + G))`,
    :math:`G` i.i.d. standard Gumbel, whose backward pass is that of the relaxed sample

    .. math:: \frac{\partial D}{\partial \theta} \approx
        \frac{\partial}{\partial \theta}\,\mathrm{softmax}\!\left(\frac{\theta + G}{\tau}\right).

    The hard sample is exactly :math:`\mathrm{Cat}(\mathrm{softmax}\,\theta)`; the gradient is
    biased, less so as :math:`\tau \to 0` at the price of variance.

    :param float temperature: the relaxation temperature :math:`\tau > 0`.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import GumbelSoftmax
    >>> key, logits = jax.random.PRNGKey(0), jnp.zeros((4, 3), dtype=jnp.float16)
    >>> sample = GumbelSoftmax(temperature=0.5)(key, logits)
    >>> str(sample.dtype), sample.sum(-1).tolist()
    ('float16', [1.0, 1.0, 1.0, 1.0])
    >>> def cost(theta):
    ...     return (GumbelSoftmax(temperature=0.5)(key, theta) * jnp.arange(3.0, dtype=jnp.float16)).sum()
    >>> grad = jax.grad(cost)(logits)
    >>> str(grad.dtype), grad.shape
    ('float16', (4, 3))

    **References**

    [1] `Categorical Reparameterization with Gumbel-Softmax`,
        Eric Jang, Shixiang Gu, Ben Poole (ICLR 2017)
    [2] `The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables`,
        Chris J. Maddison, Andriy Mnih, Yee Whye Teh (2017)
    """

    temperature: float = 0.5

    def __post_init__(self):
        python_hyperparameters(self)
        check_positive("temperature", self.temperature)

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        return (sample_gumbel(key, jnp.shape(logits), self._noise_dtype(logits)),)

    def apply(self, logits, gumbel, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _gumbel_softmax(jnp.asarray(logits), gumbel, float(self.temperature)))
