import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import lazy_property, promote_shapes

from numpyro_redge._math import safe_log
from numpyro_redge.estimators.base import check_positive


class RelaxedOneHotCategorical(Distribution):
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

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    reparametrized_params = ["probs", "logits"]
    pytree_data_fields = ("probs", "logits")
    pytree_aux_fields = ("temperature", "_parameterized_by_logits")
    support = constraints.simplex

    def __init__(self, temperature, probs=None, logits=None, *, validate_args=None):
        check_positive("temperature", temperature)
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self.temperature = float(temperature)
        self._parameterized_by_logits = logits is not None
        parameter = jnp.asarray(logits if self._parameterized_by_logits else probs)
        if jnp.ndim(parameter) < 1:
            name = "logits" if self._parameterized_by_logits else "probs"
            raise ValueError(f"`{name}` must be at least one-dimensional, got shape {jnp.shape(parameter)}.")
        if self._parameterized_by_logits:
            self.logits = parameter
        else:
            self.probs = parameter
        super().__init__(
            batch_shape=jnp.shape(parameter)[:-1],
            event_shape=jnp.shape(parameter)[-1:],
            validate_args=validate_args,
        )

    @lazy_property
    def logits(self):
        return safe_log(self.probs)

    @lazy_property
    def probs(self):
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def _log_probs(self):
        if self._parameterized_by_logits:
            return jax.nn.log_softmax(self.logits, axis=-1)
        return safe_log(self.probs)

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
