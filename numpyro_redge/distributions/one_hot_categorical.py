import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import CategoricalLogits, CategoricalProbs, Distribution, constraints

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
    maskable_real_vector,
    probs_or_logits,
    reparameterized_one_hot,
    simplex,
)
from numpyro_redge.estimators import DEFAULT_ESTIMATOR


class CategoricalParameters(Distribution):
    """A distribution over K categories parameterised by ``probs`` or ``logits``: one is given,
    the other derived on each read (not cached: the pytree structure stays that of the parameter
    given); :attr:`_log_probs` are the exact normalised log-probabilities.

    Under validation, concrete parameters are checked when the distribution is built, also inside
    ``jax.jit`` (NumPyro's own validation sees only tracers there), and in float32 at least: float16
    probabilities that sum to one are accepted.
    """

    arg_constraints = {"probs": simplex, "logits": constraints.real_vector}
    _requirements = {
        "probs": "be non-negative and sum to 1 over the last axis (within 1e-6, or the rounding of the "
        "probabilities' dtype if larger). Normalise them, or pass logits",
        "logits": "be real (no NaN or +inf; -inf masks a category) with at least one category not -inf",
    }
    reparametrized_params = ["probs", "logits"]
    pytree_data_fields = ("probs", "logits")
    pytree_aux_fields = ("_parameterized_by_logits",)

    def __init__(self, probs=None, logits=None, *, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self._parameterized_by_logits = logits is not None
        name = "logits" if self._parameterized_by_logits else "probs"
        parameter = jnp.asarray(logits if self._parameterized_by_logits else probs)
        if jnp.ndim(parameter) < 1:
            raise ValueError(f"`{name}` must be at least one-dimensional, got shape {jnp.shape(parameter)}.")
        given = logits if self._parameterized_by_logits else probs
        check_parameters(
            type(self).__name__,
            validate_args,
            {name: (given, self.arg_constraints[name], self._requirements[name])},
        )
        setattr(self, name, parameter)
        super().__init__(
            batch_shape=jnp.shape(parameter)[:-1],
            event_shape=jnp.shape(parameter)[-1:],
            validate_args=validate_args,
        )

    @classmethod
    def infer_shapes(cls, probs=None, logits=None, **other_shapes):
        """``(batch_shape, event_shape)`` from the shape of ``probs`` or ``logits``: categories on
        the last axis."""
        shape = tuple(logits if probs is None else probs)
        return shape[:-1], shape[-1:]

    @derived_property
    def logits(self):
        return safe_log(self.probs)

    @derived_property
    def probs(self):
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def _log_probs(self):
        """Normalised log-probabilities, ``-inf`` (not a clamped finite value) where ``probs`` is 0."""
        if self._parameterized_by_logits:
            return jax.nn.log_softmax(self.logits, axis=-1)
        return safe_log(self.probs)


class OneHotCategorical(CategoricalParameters):
    r"""A one-hot categorical whose samples are reparameterized by a gradient estimator (NumPyro
    has no ``OneHotCategorical`` of its own).

    ``sample()`` returns *hard* one-hot vectors (bitwise 0 and 1) whose gradient with respect to
    ``probs``/``logits`` is the estimator's surrogate, so ``Trace_ELBO`` optimizes a guide of this
    class by pathwise gradients. ``log_prob`` is the exact pmf,

    .. math:: \log p(z) = \sum_k z_k \log \pi_k ,

    written multilinearly so that it is differentiable in the value as well as in the parameters.

    The support declares ``is_discrete = False`` although the values are discrete: for NumPyro
    that flag means "no pathwise gradient", which is exactly what the estimator provides, so SVI
    runs without its discrete-latent warning (see :mod:`numpyro_redge.distributions.util`).

    :param probs: event probabilities (summing to one over the last axis).
    :param logits: event log-probabilities (unnormalised).
    :param estimator: a gradient estimator from :mod:`numpyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~numpyro_redge.estimators.DEFAULT_ESTIMATOR`). Static (pytree aux data).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import OneHotCategorical, ReinMax
    >>> key = jax.random.PRNGKey(0)
    >>> d = OneHotCategorical(logits=jnp.zeros(3), estimator=ReinMax())
    >>> z = d.sample(key, (2,))
    >>> z.shape, z.sum(-1).tolist()
    ((2, 3), [1.0, 1.0])
    >>> bool(jnp.allclose(d.log_prob(z), -jnp.log(3.0)))
    True
    >>> def cost(logits):  # the gradient flows through the sample
    ...     return OneHotCategorical(logits=logits, estimator=ReinMax()).sample(key) @ jnp.array([1.0, 2.0, 3.0])
    >>> bool(jnp.abs(jax.grad(cost)(jnp.zeros(3))).sum() > 0)
    True
    """

    # A -inf logit masks a category (probability exactly zero), as in Pyro.
    arg_constraints = {"probs": simplex, "logits": maskable_real_vector}
    pytree_aux_fields = ("estimator",)
    has_rsample = estimator_is_pathwise

    @property
    def support(self):
        return estimator_support(self, reparameterized_one_hot)

    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, estimator=DEFAULT_ESTIMATOR, *, validate_args=None):
        self.estimator = check_estimator(estimator, type(self).__name__)
        super().__init__(probs, logits, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        return self.estimator(key, jnp.broadcast_to(self._log_probs, shape))

    def log_prob(self, value):
        size = self.event_shape[-1]
        indices = not isinstance(value, jax.core.Tracer) and jnp.issubdtype(jnp.result_type(value), jnp.integer)
        if jnp.ndim(value) == 0 or jnp.shape(value)[-1] != size or (indices and not _is_one_hot(np.asarray(value))):
            # NumPyro's parallel enumeration (funsor) substitutes category indices, arange(K), for
            # the value of an enumerated site.
            raise ValueError(
                f"OneHotCategorical.log_prob: value must be one-hot with a last axis of size {size}, "
                f"got {value!r}. NumPyro's parallel enumeration substitutes integer indices for an "
                "enumerated site's value: enumerate a Categorical site instead."
            )
        inside = check_value(self, value)
        return mask_outside_support(inside, expected_log_prob(value, self._log_probs))

    def expand(self, batch_shape):
        """The same class with broadcast parameters (not an ``ExpandedDistribution``), keeping the
        estimator."""
        shape = tuple(batch_shape) + self.event_shape
        if self._parameterized_by_logits:
            return type(self)(
                logits=jnp.broadcast_to(self.logits, shape), estimator=self.estimator, validate_args=False
            )
        return type(self)(probs=jnp.broadcast_to(self.probs, shape), estimator=self.estimator, validate_args=False)

    def enumerate_support(self, expand=True):
        size = self.event_shape[0]
        values = jnp.eye(size, dtype=jnp.result_type(self._log_probs)).reshape(
            (size,) + (1,) * len(self.batch_shape) + (size,)
        )
        if expand:
            values = jnp.broadcast_to(values, (size,) + self.batch_shape + (size,))
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
        """The one-hot vector of the most probable category (the first one on a tie)."""
        log_probs = self._log_probs
        return jax.nn.one_hot(jnp.argmax(log_probs, -1), log_probs.shape[-1], dtype=log_probs.dtype)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the parameters (``probs`` or ``logits``, as ``fn`` has them) of a host
        ``CategoricalProbs``/``CategoricalLogits`` ``fn`` (for the KL: NumPyro has no one-hot
        categorical to replace); ``truncation`` is unused (a finite support)."""
        return cls(**probs_or_logits(fn), estimator=estimator)

    @staticmethod
    def kl_divergence(p, q):
        """The exact KL between two categoricals over the same categories, each ours or a host
        ``Categorical``; ``inf`` where ``p`` charges a category ``q`` does not."""
        return categorical_kl(_normalised_log_probs(p), _normalised_log_probs(q))

    def guide_parameter(self):
        """The normalised log-probabilities (a mean-field guide's logits) and their constraint."""
        return self._log_probs, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A guide of this family with logits ``parameter``."""
        return OneHotCategorical(logits=parameter, estimator=estimator)


__all__ = ["OneHotCategorical"]


def _is_one_hot(values):
    return values.ndim > 0 and bool(((values == 0) | (values == 1)).all() and (values.sum(-1) == 1).all())


def _normalised_log_probs(distribution):
    if not isinstance(distribution, OneHotCategorical):
        distribution = OneHotCategorical.from_host(distribution, DEFAULT_ESTIMATOR)
    return distribution._log_probs


register(OneHotCategorical, kl_hosts=(CategoricalLogits, CategoricalProbs))
