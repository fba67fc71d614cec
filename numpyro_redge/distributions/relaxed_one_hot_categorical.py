import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

from numpyro_redge.distributions.one_hot_categorical import CategoricalParameters
from redge_core.checks import check_positive


class RelaxedOneHotCategorical(CategoricalParameters):
    r"""The Concrete (relaxed one-hot categorical) distribution on the simplex, which NumPyro
    lacks: :math:`y = \mathrm{softmax}((\log\pi + G)/\tau)`, :math:`G` i.i.d. standard Gumbel,
    with density

    .. math:: p(y) = \Gamma(K)\,\tau^{K-1}\,
        \frac{\prod_k \pi_k y_k^{-\tau-1}}{\left(\sum_j \pi_j y_j^{-\tau}\right)^{K}}.

    Samples are soft (points of the simplex) and reparameterized. The same class as Pyro's
    ``RelaxedOneHotCategorical``, so it has no twin in :mod:`pyro_redge`.

    :param float temperature: the relaxation temperature :math:`\tau > 0` (a Python number).
    :param probs: event probabilities (summing to one over the last axis).
    :param logits: event log-probabilities (unnormalised).

    **References**

    [1] `The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables`,
        Chris J. Maddison, Andriy Mnih, Yee Whye Teh (2017)
    [2] `Categorical Reparameterization with Gumbel-Softmax`, Eric Jang, Shixiang Gu, Ben Poole (2017)
    """

    pytree_aux_fields = ("temperature",)
    support = constraints.simplex

    def __init__(self, temperature, probs=None, logits=None, *, validate_args=None):
        check_positive("temperature", temperature)
        self.temperature = float(temperature)
        super().__init__(probs, logits, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        log_probs = self._log_probs
        gumbel = jax.random.gumbel(key, shape, dtype=jnp.result_type(log_probs))
        return jax.nn.softmax((log_probs + gumbel) / self.temperature, axis=-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_probs, value = promote_shapes(self._log_probs, value)
        size = self.event_shape[0]
        log_value = jnp.log(value)
        scores = log_probs - self.temperature * log_value
        return (
            gammaln(size)
            + (size - 1) * jnp.log(self.temperature)
            + scores.sum(-1)
            - log_value.sum(-1)
            - size * logsumexp(scores, axis=-1)
        )
