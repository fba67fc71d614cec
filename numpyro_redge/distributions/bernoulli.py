import jax
import jax.numpy as jnp
from numpyro.distributions import BernoulliLogits, BernoulliProbs, Distribution, constraints

from numpyro_redge._math import categorical_kl, expected_log_prob, safe_log
from numpyro_redge.distributions.registry import register
from numpyro_redge.distributions.util import (
    check_estimator,
    check_parameters,
    check_value,
    derived_property,
    estimator_is_pathwise,
    estimator_support,
    mask_outside_support,
    probs_or_logits,
    reparameterized_boolean,
)
from numpyro_redge.estimators import DEFAULT_ESTIMATOR


class Bernoulli(Distribution):
    r"""A Bernoulli whose samples are reparameterized by a gradient estimator applied to the
    two-category distribution over :math:`\{0, 1\}`.

    ``sample()`` returns hard values, exactly ``0.`` or ``1.``, whose gradient is the estimator's
    surrogate. ``log_prob`` is exact and linear in the value,

    .. math:: \log p(z) = z \log p + (1 - z) \log (1 - p),

    so it is differentiable in the value as well as in the parameters. Like
    :class:`OneHotCategorical`, the support is not ``is_discrete`` for NumPyro's inference code.

    :param probs: the probability of a one, in [0, 1].
    :param logits: the log-odds of a one.
    :param estimator: a gradient estimator from :mod:`numpyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~numpyro_redge.estimators.DEFAULT_ESTIMATOR`). Static (pytree aux data).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import Bernoulli
    >>> key = jax.random.PRNGKey(0)
    >>> d = Bernoulli(probs=jnp.array([0.2, 0.9]))
    >>> b = d.sample(key)
    >>> b.shape, set(b.tolist()) <= {0.0, 1.0}
    ((2,), True)
    >>> bool(jnp.allclose(d.log_prob(jnp.array([1.0, 0.0])), jnp.log(jnp.array([0.2, 0.1]))))
    True
    >>> jax.grad(lambda probs: Bernoulli(probs=probs).sample(key).sum())(jnp.array([0.2, 0.9])).shape
    (2,)
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    reparametrized_params = ["probs", "logits"]
    pytree_data_fields = ("probs", "logits")
    pytree_aux_fields = ("estimator", "_parameterized_by_logits")
    has_rsample = estimator_is_pathwise

    @property
    def support(self):
        return estimator_support(self, reparameterized_boolean)

    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, estimator=DEFAULT_ESTIMATOR, *, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self.estimator = check_estimator(estimator, type(self).__name__)
        self._parameterized_by_logits = logits is not None
        given = logits if self._parameterized_by_logits else probs
        name = "logits" if self._parameterized_by_logits else "probs"
        requirement = "be a real number (no NaN or infinity)" if name == "logits" else "lie in [0, 1]"
        check_parameters(type(self).__name__, validate_args, {name: (given, self.arg_constraints[name], requirement)})
        parameter = jnp.asarray(given)
        if not jnp.issubdtype(parameter.dtype, jnp.floating):
            parameter = parameter.astype(jnp.result_type(float))
        if self._parameterized_by_logits:
            self.logits = parameter
        else:
            self.probs = parameter
        super().__init__(batch_shape=jnp.shape(parameter), validate_args=validate_args)

    # Derived on each read, not cached: the pytree structure stays that of the parameter given.
    @derived_property
    def logits(self):
        return safe_log(self.probs) - safe_log(1 - self.probs)

    @derived_property
    def probs(self):
        return jax.nn.sigmoid(self.logits)

    @property
    def _log_probs(self):
        """Normalised log-probabilities of ``(0, 1)`` on a trailing axis of size two."""
        if self._parameterized_by_logits:
            return jnp.stack([jax.nn.log_sigmoid(-self.logits), jax.nn.log_sigmoid(self.logits)], axis=-1)
        return jnp.stack([safe_log(1 - self.probs), safe_log(self.probs)], axis=-1)

    def sample(self, key, sample_shape=()):
        log_probs = self._log_probs
        shape = tuple(sample_shape) + self.batch_shape + (2,)
        return self.estimator(key, jnp.broadcast_to(log_probs, shape))[..., 1]

    def log_prob(self, value):
        inside = check_value(self, value)
        value = jnp.asarray(value, dtype=jnp.result_type(self._log_probs))
        return mask_outside_support(inside, expected_log_prob(jnp.stack([1 - value, value], axis=-1), self._log_probs))

    def expand(self, batch_shape):
        """The same class with broadcast parameters, keeping the estimator."""
        shape = tuple(batch_shape)
        if self._parameterized_by_logits:
            return type(self)(
                logits=jnp.broadcast_to(self.logits, shape), estimator=self.estimator, validate_args=False
            )
        return type(self)(probs=jnp.broadcast_to(self.probs, shape), estimator=self.estimator, validate_args=False)

    def enumerate_support(self, expand=True):
        values = jnp.arange(2, dtype=jnp.result_type(self._log_probs)).reshape((2,) + (1,) * len(self.batch_shape))
        if expand:
            values = jnp.broadcast_to(values, (2,) + self.batch_shape)
        return values

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def entropy(self):
        log_probs = self._log_probs
        return -expected_log_prob(jnp.exp(log_probs), log_probs)

    @property
    def mode(self):
        """The more probable value, ``0.`` on a tie."""
        log_probs = self._log_probs
        return (log_probs[..., 1] > log_probs[..., 0]).astype(log_probs.dtype)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the parameter (``probs`` or ``logits``, as ``fn`` has it) of a host
        ``BernoulliProbs``/``BernoulliLogits`` ``fn``; ``truncation`` is unused (a finite support)."""
        return cls(**probs_or_logits(fn), estimator=estimator)

    @staticmethod
    def kl_divergence(p, q):
        """The exact KL between two Bernoullis, each ours or a host ``Bernoulli``; ``inf`` where
        ``p`` charges a value ``q`` does not."""
        return categorical_kl(_normalised_log_probs(p), _normalised_log_probs(q))

    def guide_parameter(self):
        """The log-odds (a mean-field guide's logits) and their constraint."""
        log_probs = self._log_probs
        return log_probs[..., 1] - log_probs[..., 0], constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A guide of this family with logits ``parameter``."""
        return Bernoulli(logits=parameter, estimator=estimator)


def _normalised_log_probs(distribution):
    if not isinstance(distribution, Bernoulli):
        distribution = Bernoulli.from_host(distribution, DEFAULT_ESTIMATOR)
    return distribution._log_probs


register(Bernoulli, hosts=(BernoulliLogits, BernoulliProbs))
