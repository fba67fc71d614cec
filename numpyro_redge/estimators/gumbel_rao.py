import dataclasses
import functools

import jax
import jax.numpy as jnp

from numpyro_redge._math import (
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_exponential,
    sample_uniform,
    softmax_vjp,
)
from numpyro_redge.estimators.base import Estimator, invalid_rows_to_nan, zero_cotangent
from redge_core.checks import check_positive, check_positive_integer
from redge_core.estimator_options import python_hyperparameters


def conditional_perturbed_logits(logits, index, exponentials):
    r"""Draws of :math:`\theta + G` (``G`` i.i.d. standard Gumbel) conditioned on
    :math:`\arg\max(\theta + G) = ` ``index``, one per leading slice of ``exponentials``
    (i.i.d. standard exponentials of shape ``(M,) + logits.shape``), by the top-down construction:
    the maximum is :math:`\log Z - \log E_D` (a Gumbel located at :math:`\log Z = \mathrm{logsumexp}\,\theta`)
    and every other coordinate is :math:`-\log(E_j e^{-\theta_j} + E_D / Z)`, below it. A masked
    (``-inf``) category stays at ``-inf``."""
    log_exponentials = jnp.log(exponentials)
    log_partition = jax.nn.logsumexp(logits, -1, keepdims=True)
    chosen = jnp.broadcast_to(index, exponentials.shape[:-1] + (1,))
    log_chosen = jnp.take_along_axis(log_exponentials, chosen, -1)
    others = -jnp.logaddexp(log_exponentials - logits, log_chosen - log_partition)
    return jnp.put_along_axis(others, chosen, log_partition - log_chosen, axis=-1, inplace=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _gumbel_rao(logits, uniform, exponentials, temperature):
    return _gumbel_rao_forward(logits, uniform, exponentials, temperature)[0]


def _gumbel_rao_forward(logits, uniform, exponentials, temperature):
    logits_c = logits.astype(compute_dtype(logits.dtype))
    index = categorical_from_uniform(jax.nn.softmax(logits_c, axis=-1), uniform)
    perturbed = conditional_perturbed_logits(logits_c, index, exponentials.astype(logits_c.dtype))
    relaxed = jax.nn.softmax(perturbed / temperature, axis=-1)
    return one_hot(index, logits), (relaxed, uniform, exponentials)


def _gumbel_rao_backward(temperature, residuals, grad_sample):
    relaxed, uniform, exponentials = residuals
    cotangent = jnp.broadcast_to(grad_sample.astype(relaxed.dtype), relaxed.shape)
    grad = softmax_vjp(relaxed, cotangent).mean(0) / temperature
    return grad.astype(grad_sample.dtype), zero_cotangent(uniform), zero_cotangent(exponentials)


_gumbel_rao.defvjp(_gumbel_rao_forward, _gumbel_rao_backward)


@dataclasses.dataclass(frozen=True)
class GumbelRao(Estimator):
    r"""Gumbel-Rao: the straight-through Gumbel-softmax gradient averaged over the Gumbel noise
    given the sample. The hard sample is :math:`D \sim \mathrm{Cat}(\mathrm{softmax}\,\theta)`;
    the backward pass is

    .. math:: \frac{\partial D}{\partial \theta} \approx \frac{1}{M} \sum_{m=1}^{M}
        \frac{\partial}{\partial \theta}\,\mathrm{softmax}\!\left(\frac{\theta + G_m}{\tau}\right),
        \qquad G_m \sim \mathrm{Gumbel}(0, 1)^K \mid \arg\max(\theta + G_m) = D,

    a Monte-Carlo estimate of :math:`\mathbb{E}[\partial\,\mathrm{softmax}((\theta + G)/\tau) \mid D]`:
    the same expectation as :class:`GumbelSoftmax` at the same temperature (the same bias), with
    less variance, at the cost of ``num_draws`` softmaxes in the backward pass. With
    ``num_draws = 1`` it is :class:`GumbelSoftmax` in law.

    :param float temperature: the relaxation temperature :math:`\tau > 0`.
    :param int num_draws: the number :math:`M \ge 1` of conditional Gumbel draws.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import GumbelRao, OneHotCategorical
    >>> key = jax.random.PRNGKey(0)
    >>> value = OneHotCategorical(logits=jnp.zeros(3), estimator=GumbelRao(num_draws=10)).sample(key)
    >>> sorted(value.tolist())
    [0.0, 0.0, 1.0]
    >>> def cost(logits):
    ...     value = OneHotCategorical(logits=logits, estimator=GumbelRao(num_draws=10)).sample(key)
    ...     return value @ jnp.array([1.0, 2.0, 3.0])
    >>> bool(jnp.abs(jax.grad(cost)(jnp.zeros(3))).sum() > 0)
    True

    **References**

    [1] `Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient Estimator`,
        Max B. Paulus, Chris J. Maddison, Andreas Krause (ICLR 2021)
    [2] `A* Sampling`, Chris J. Maddison, Daniel Tarlow, Tom Minka (NeurIPS 2014): the top-down
        construction of Gumbels conditioned on their argmax
    """

    temperature: float = 0.5
    num_draws: int = 10

    def __post_init__(self):
        python_hyperparameters(self)
        check_positive("temperature", self.temperature)
        check_positive_integer("num_draws", self.num_draws)

    def sample_noise(self, key, logits, k=1):
        self._check_k(k, logits)
        dtype = self._noise_dtype(logits)
        uniform_key, exponential_key = jax.random.split(key)
        exponentials = sample_exponential(exponential_key, (self.num_draws,) + jnp.shape(logits), dtype)
        return sample_uniform(uniform_key, logits, dtype), exponentials

    def apply(self, logits, uniform, exponentials, *, k=1):
        self._check_k(k, logits)
        if jnp.shape(exponentials) != (self.num_draws,) + jnp.shape(logits):
            raise ValueError(
                "exponentials must have shape (num_draws,) + logits.shape = "
                f"{(self.num_draws,) + tuple(jnp.shape(logits))}, got {tuple(jnp.shape(exponentials))}"
            )
        return invalid_rows_to_nan(
            logits, _gumbel_rao(jnp.asarray(logits), uniform, exponentials, float(self.temperature))
        )
