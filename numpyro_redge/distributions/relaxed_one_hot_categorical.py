import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

from numpyro_redge.distributions.one_hot_categorical import CategoricalParameters
from numpyro_redge.distributions.util import mask_outside_support, simplex
from redge_core.checks import check_positive


class RelaxedOneHotCategorical(CategoricalParameters):
    r"""The Concrete (relaxed one-hot categorical) distribution on the simplex, which NumPyro
    lacks: :math:`y = \mathrm{softmax}((\log\pi + G)/\tau)`, :math:`G` i.i.d. standard Gumbel,
    with density

    .. math:: p(y) = \Gamma(K)\,\tau^{K-1}\,
        \frac{\prod_k \pi_k y_k^{-\tau-1}}{\left(\sum_j \pi_j y_j^{-\tau}\right)^{K}}.

    Samples are soft (points of the simplex) and reparameterized. The same class as Pyro's
    ``RelaxedOneHotCategorical``, so it has no twin in :mod:`pyro_redge`.

    At a low temperature a coordinate of a sample underflows to exactly 0, where the density of
    the rounded point is not finite. As NumPyro's own relaxed distributions do (a transformed
    log-space base), the log-values of each draw are kept as its *intermediates*
    (:meth:`sample_with_intermediates`; NumPyro's handlers record them at a site and pass them to
    :meth:`log_prob`), and the density is computed in log space from them: finite on the
    distribution's own samples. Scoring a bare value takes its logarithm.

    :param temperature: the relaxation temperature :math:`\tau > 0`, a scalar: a number, or a 0-d
        array that may be traced under ``jax.jit`` (a concrete one is validated; a traced
        non-positive one gives NaN samples and densities).
    :param probs: event probabilities (summing to one over the last axis).
    :param logits: event log-probabilities (unnormalised).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import RelaxedOneHotCategorical
    >>> d = RelaxedOneHotCategorical(0.5, logits=jnp.zeros(3))
    >>> y = d.sample(jax.random.PRNGKey(0))  # a soft point of the simplex
    >>> y.shape, bool(jnp.isclose(y.sum(), 1.0)), bool(jnp.isfinite(d.log_prob(y)))
    ((3,), True, True)

    **References**

    [1] `The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables`,
        Chris J. Maddison, Andriy Mnih, Yee Whye Teh (2017)
    [2] `Categorical Reparameterization with Gumbel-Softmax`,
        Eric Jang, Shixiang Gu, Ben Poole (ICLR 2017)
    """

    arg_constraints = {"temperature": constraints.positive, "probs": simplex, "logits": constraints.real_vector}
    reparametrized_params = ["temperature", "probs", "logits"]
    pytree_data_fields = ("temperature",)
    support = constraints.simplex

    def __init__(self, temperature, probs=None, logits=None, *, validate_args=None):
        if jnp.ndim(temperature) != 0:
            raise ValueError(f"temperature must be a scalar, got shape {jnp.shape(temperature)}")
        if isinstance(temperature, jax.core.Tracer):
            self.temperature = temperature
        else:
            check_positive("temperature", temperature)
            self.temperature = float(temperature)
        super().__init__(probs, logits, validate_args=validate_args)

    def expand(self, batch_shape):
        """The same class with broadcast parameters (not an ``ExpandedDistribution``)."""
        shape = tuple(batch_shape) + self.event_shape
        name = "logits" if self._parameterized_by_logits else "probs"
        parameters = {name: jnp.broadcast_to(getattr(self, name), shape)}
        return type(self)(self.temperature, **parameters, validate_args=self._validate_args)

    def _scaled(self, key, sample_shape):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        log_probs = self._log_probs
        gumbel = jax.random.gumbel(key, shape, dtype=jnp.result_type(log_probs))
        positive = True if isinstance(self.temperature, float) else self.temperature > 0
        return (log_probs + gumbel) / self.temperature, positive

    def sample(self, key, sample_shape=()):
        scaled, positive = self._scaled(key, sample_shape)
        return _nan_unless(positive, jax.nn.softmax(scaled, axis=-1))

    def sample_with_intermediates(self, key, sample_shape=()):
        """A draw and, as its intermediates, its log-values (finite where the draw underflows to 0)."""
        scaled, positive = self._scaled(key, sample_shape)
        return _nan_unless(positive, jax.nn.softmax(scaled, axis=-1)), [
            _nan_unless(positive, jax.nn.log_softmax(scaled, axis=-1))
        ]

    def log_prob(self, value, intermediates=None):
        # NumPyro's convention for a continuous support: a warning eagerly (float rounding puts a
        # sum of many coordinates slightly off one), -inf under jit.
        inside = self._validate_sample(value) if self._validate_args else True
        log_value = jnp.log(value) if intermediates is None else intermediates[0]
        log_probs, log_value = promote_shapes(self._log_probs, log_value)
        size = self.event_shape[0]
        scores = log_probs - self.temperature * log_value
        return mask_outside_support(
            inside,
            gammaln(size)
            + (size - 1) * jnp.log(self.temperature)
            + scores.sum(-1)
            - log_value.sum(-1)
            - size * logsumexp(scores, axis=-1),
        )


def _nan_unless(condition, values):
    """``values`` where ``condition`` holds (unchanged), NaN elsewhere: a traced non-positive
    temperature cannot be refused, and must not give plausible points of the simplex."""
    if condition is True or (not isinstance(condition, jax.core.Tracer) and bool(jnp.all(condition))):
        return values
    return jnp.where(condition, values, jnp.nan)
