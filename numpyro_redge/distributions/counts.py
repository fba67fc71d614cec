"""Count distributions reparameterized by the generalized Gumbel-softmax construction: thin
specialisations of :class:`~numpyro_redge.distributions.reparameterized_discrete.ReparameterizedDiscrete`
over the host's own. Each parameter accepts what the host's distribution accepts; ``truncation``,
``tail_mass`` (≥ 1e-12) and ``max_support`` (the largest support built, 10⁶ values by default) are
those of :class:`ReparameterizedDiscrete`, and :meth:`guide` keeps the prior's."""

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as host
from jax.scipy.special import gammaln, xlog1py, xlogy
from numpyro.distributions import constraints
from numpyro.distributions.util import clamp_probs

from numpyro_redge.distributions.registry import register
from numpyro_redge.distributions.reparameterized_discrete import ReparameterizedDiscrete, numpy_parameters, unexpanded
from numpyro_redge.distributions.util import check_parameters, probs_or_logits
from numpyro_redge.estimators import DEFAULT_ESTIMATOR
from redge_core import support
from redge_core.support import DEFAULT_MAX_SUPPORT, DEFAULT_TAIL_MASS


class _HostParameters:
    """The host distribution's parameters, read through (each class has those of its host), with
    the host's ``arg_constraints`` (of every host class it replaces) and ``get_args`` (the
    parameters the host instance has)."""

    _family = None

    def _scipy_law(self):
        """The SciPy law of the family (``_family``: a name of
        :data:`redge_core.support.SCIPY_FAMILIES`), whose quantiles give the support window."""
        return support.scipy_law(self._family, **numpy_parameters(self.base, type(self).__name__))

    def get_args(self):
        base = unexpanded(self.base)
        return {name: getattr(self, name) for name in base.arg_constraints if name in self.arg_constraints}

    @property
    def rate(self):
        return unexpanded(self.base).rate

    @property
    def total_count(self):
        return unexpanded(self.base).total_count

    @property
    def probs(self):
        return unexpanded(self.base).probs

    @property
    def logits(self):
        return unexpanded(self.base).logits


def _poisson_log_prob(base, value):
    """NumPyro's Poisson log-pmf (the same values), with a gradient in the rate that is not NaN at
    ``rate = 0``: ``xlogy(value, rate)`` reads the rate only where ``value ≠ 0`` (its derivative
    there is ``value / rate = 0 / 0``). Gradients may differ from the host's in the last bit (XLA
    sums the broadcast rate's cotangent in another order)."""
    ftype = jnp.result_type(float)
    rate = jnp.astype(unexpanded(base).rate, ftype)
    value = jnp.astype(value, ftype)
    return xlogy(value, jnp.where(value == 0, 1.0, rate)) - gammaln(value + 1.0) - rate


class Poisson(_HostParameters, ReparameterizedDiscrete):
    r"""A Poisson count reparameterized on its support window :math:`\{L, \dots, K\}`
    (see :class:`ReparameterizedDiscrete`),

    .. math:: p(n) \propto \frac{\lambda^n e^{-\lambda}}{n!}, \qquad n \in \{L, \dots, K\}.

    :param rate: the rate :math:`\lambda \ge 0` (a zero rate puts all the mass on 0).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import Poisson
    >>> key = jax.random.PRNGKey(0)
    >>> d = Poisson(jnp.array(4.0))
    >>> d.support_window()  # both tails below tail_mass = 1e-6
    (0, 17)
    >>> n = d.sample(key, (3,))
    >>> n.shape, bool((n == jnp.round(n)).all()), bool(d.dropped_mass() < 1e-6)
    ((3,), True, True)
    >>> jax.grad(lambda rate: Poisson(rate, truncation=17).sample(key))(jnp.array(4.0)).shape  # static window under jit
    ()
    """

    arg_constraints = host.Poisson.arg_constraints
    _family = "poisson"
    # The parameters live in ``base`` (the only pytree data); NumPyro would otherwise take the
    # names of arg_constraints as data fields.
    pytree_data_fields = ()
    _log_prob_of = staticmethod(_poisson_log_prob)

    def __init__(
        self,
        rate,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        *,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Poisson(rate, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args=validate_args, max_support=max_support)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the rate of a host ``Poisson`` ``fn``."""
        return cls(fn.rate, estimator=estimator, truncation=truncation)

    # The log-pmf up to a constant per batch element, centred on the window (see
    # redge_core.support.poisson_centring): one multiply-add per value and element.

    def _rate_ratio(self, reference):
        """``log(λ / m)`` in the compute dtype, in the batch shape: ``-inf`` at ``λ = 0``, with a
        gradient that is never NaN there (the logarithm only ever sees a positive rate)."""
        rate = jnp.broadcast_to(jnp.astype(unexpanded(self.base).rate, jnp.result_type(float)), self.batch_shape)
        zero = rate == 0
        safe = jnp.where(zero, reference, rate)
        return jnp.where(zero, -jnp.inf, jnp.log1p((safe - reference) / reference))

    def _support_and_log_pmf(self):
        self._check_not_vmapped()
        values = self._support_values()
        first, last = self.support_window()
        reference, table = support.poisson_centring(first, last)
        log_pmf = (values - first) * self._rate_ratio(reference)[..., None] - jnp.asarray(table, values.dtype)
        if first == 0:
            log_pmf = log_pmf.at[..., 0].set(0.0)  # 0 · log(0 / m) at rate 0: the value 0 has all the mass
        return values, log_pmf

    def _centred_log_pmf(self, value, ratio):
        """The centred log-pmf (the constant of :meth:`_support_and_log_pmf`) at ``value``, any
        shape broadcasting with ``ratio``: the window's values from the float64 table, others from
        the log-gamma function; ``-inf`` below 0."""
        first, last = self.support_window()
        reference, table = support.poisson_centring(first, last)
        offset = value - first
        inside = (offset >= 0) & (offset <= last - first)
        from_table = jnp.asarray(table, value.dtype)[jnp.clip(offset, 0, last - first).astype(jnp.int32)]
        outside = gammaln(value + 1) - math.lgamma(first + 1) - offset * math.log(reference)
        linear = jnp.where(offset == 0, 0.0, offset * ratio)
        centred = linear - jnp.where(inside, from_table, outside)
        return jnp.where(value >= 0, centred, -jnp.inf)

    def _base_log_prob(self, value):
        value = jnp.asarray(value, jnp.result_type(float))
        return self._centred_log_pmf(value, self._rate_ratio(support.poisson_centring(*self.support_window())[0]))

    def _grid_log_pmf(self, values):
        self._check_not_vmapped()
        ratio = self._rate_ratio(support.poisson_centring(*self.support_window())[0])[..., None]
        return self._centred_log_pmf(values, ratio)

    def guide_parameter(self):
        """The rate, constrained positive."""
        return self.rate, constraints.positive

    def guide(self, parameter, estimator, truncation=None):
        """A ``Poisson`` of rate ``parameter`` (and this one's ``tail_mass`` and ``max_support``)."""
        return Poisson(parameter, estimator, truncation, self.tail_mass, max_support=self.max_support)


class Binomial(_HostParameters, ReparameterizedDiscrete):
    r"""A binomial count reparameterized on :math:`\{L, \dots, K\}`, :math:`K \le n`
    (see :class:`ReparameterizedDiscrete`),

    .. math:: p(k) \propto \binom{n}{k} p^k (1 - p)^{n - k}.

    :param total_count: the number of trials :math:`n` (a non-negative integer, or an array of them).
    :param probs: the success probability, in [0, 1].
    :param logits: the log-odds of success.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import Binomial
    >>> n = Binomial(10, probs=jnp.array([0.3, 0.8])).sample(jax.random.PRNGKey(0), (4,))
    >>> n.shape, bool(((n >= 0) & (n <= 10) & (n == jnp.round(n))).all())
    ((4, 2), True)
    """

    arg_constraints = {**host.BinomialProbs.arg_constraints, **host.BinomialLogits.arg_constraints}
    _family = "binomial"
    # The parameters live in ``base`` (the only pytree data); NumPyro would otherwise take the
    # names of arg_constraints as data fields.
    pytree_data_fields = ()

    def __init__(
        self,
        total_count=1,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        *,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Binomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args=validate_args, max_support=max_support)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``total_count`` and the ``probs`` or ``logits`` (as ``fn`` has it) of a host
        ``BinomialProbs``/``BinomialLogits`` ``fn``."""
        return cls(fn.total_count, **probs_or_logits(fn), estimator=estimator, truncation=truncation)

    def guide_parameter(self):
        """The logits, unconstrained."""
        return self.logits, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A ``Binomial`` of this ``total_count`` (and ``tail_mass``) with logits ``parameter``."""
        return Binomial(
            self.total_count,
            logits=parameter,
            estimator=estimator,
            truncation=truncation,
            tail_mass=self.tail_mass,
            max_support=self.max_support,
        )


class Geometric(_HostParameters, ReparameterizedDiscrete):
    r"""The number of failures before the first success, reparameterized on :math:`\{L, \dots, K\}`
    (see :class:`ReparameterizedDiscrete`),

    .. math:: p(k) \propto (1 - p)^k\, p.

    :param probs: the success probability, in (0, 1] (0 has no mass on any finite support: a
        ``ValueError``, as in Pyro).
    :param logits: the log-odds of success.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import Geometric
    >>> d = Geometric(probs=jnp.array(0.5))
    >>> d.support_window()  # P(N > 19) = 0.5 ** 20 < 1e-6
    (0, 19)
    >>> d.sample(jax.random.PRNGKey(0), (3,)).shape
    (3,)
    """

    arg_constraints = {**host.GeometricProbs.arg_constraints, **host.GeometricLogits.arg_constraints}
    _family = "geometric"
    # The parameters live in ``base`` (the only pytree data); NumPyro would otherwise take the
    # names of arg_constraints as data fields.
    pytree_data_fields = ()

    def __init__(
        self,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        *,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Geometric(probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args=validate_args, max_support=max_support)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``probs`` or ``logits`` (as ``fn`` has it) of a host
        ``GeometricProbs``/``GeometricLogits`` ``fn``."""
        return cls(**probs_or_logits(fn), estimator=estimator, truncation=truncation)

    def guide_parameter(self):
        """The logits, unconstrained."""
        return self.logits, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A ``Geometric`` with logits ``parameter`` (and this one's ``tail_mass``)."""
        return Geometric(
            logits=parameter,
            estimator=estimator,
            truncation=truncation,
            tail_mass=self.tail_mass,
            max_support=self.max_support,
        )


def _negative_binomial_log_prob(base, value):
    # NumPyro's GammaPoisson.log_prob (through betaln) loses ~1e-6 relative accuracy at counts
    # of ~10³ even in float64; this is the same pmf by log-gamma, accurate to ~1e-12.
    base = unexpanded(base)
    # A Python or integer total_count would be an integer input of xlog1py (no tangent under grad).
    r = jnp.asarray(base.total_count)
    r = r.astype(jnp.result_type(r, float))
    if "logits" in base.__dict__:
        log_terms = value * jax.nn.log_sigmoid(base.logits) + r * jax.nn.log_sigmoid(-base.logits)
    else:
        log_terms = xlogy(value, base.probs) + xlog1py(r, -base.probs)
    return gammaln(value + r) - gammaln(value + 1) - gammaln(r) + log_terms


class NegativeBinomial(_HostParameters, ReparameterizedDiscrete):
    r"""The number of successes before ``total_count`` failures, reparameterized on
    :math:`\{L, \dots, K\}` (see :class:`ReparameterizedDiscrete`),

    .. math:: p(k) \propto \frac{\Gamma(k + r)}{k!\,\Gamma(r)}\, p^k (1 - p)^r .

    :param total_count: the number of failures :math:`r`, a real: :math:`r \ge 0` in Pyro (where
        :math:`r = 0` puts all the mass on 0), :math:`r > 0` in NumPyro (each host's own constraint).
    :param probs: the success probability, in [0, 1).
    :param logits: the log-odds of success.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import NegativeBinomial
    >>> n = NegativeBinomial(total_count=3.0, probs=jnp.array([0.2, 0.6])).sample(jax.random.PRNGKey(0), (4,))
    >>> n.shape, bool(((n >= 0) & (n == jnp.round(n))).all())
    ((4, 2), True)
    """

    arg_constraints = {
        **host.NegativeBinomialProbs.arg_constraints,
        **host.NegativeBinomialLogits.arg_constraints,
    }
    _family = "negative_binomial"
    # The parameters live in ``base`` (the only pytree data); NumPyro would otherwise take the
    # names of arg_constraints as data fields.
    pytree_data_fields = ()
    _log_prob_of = staticmethod(_negative_binomial_log_prob)

    @property
    def probs(self):
        # NumPyro's NegativeBinomialLogits has no probs, nor NegativeBinomialProbs logits: derived
        # as NumPyro's Binomial and Geometric derive theirs.
        base = unexpanded(self.base)
        if "probs" in base.arg_constraints:
            return base.probs
        return jax.nn.sigmoid(base.logits)

    @property
    def logits(self):
        base = unexpanded(self.base)
        if "logits" in base.arg_constraints:
            return base.logits
        probs = clamp_probs(base.probs)
        return jnp.log(probs) - jnp.log1p(-probs)

    def __init__(
        self,
        total_count,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        *,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        # NumPyro builds a negative binomial as a Gamma-Poisson, whose own error would name the
        # Gamma's rate: check the parameters the user gave first, by their names.
        check_parameters(
            type(self).__name__,
            validate_args,
            {
                "total_count": (total_count, constraints.positive, "be > 0"),
                "probs": (probs, constraints.unit_interval, "be in [0, 1]"),
                "logits": (logits, constraints.real, "be real (not NaN)"),
            },
        )
        base = host.NegativeBinomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args=validate_args, max_support=max_support)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``total_count`` and the ``probs`` or ``logits`` (as ``fn`` has it) of a host
        ``NegativeBinomialProbs``/``NegativeBinomialLogits`` ``fn``."""
        return cls(fn.total_count, **probs_or_logits(fn), estimator=estimator, truncation=truncation)

    def guide_parameter(self):
        """The logits, unconstrained."""
        return self.logits, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A ``NegativeBinomial`` of this ``total_count`` (and ``tail_mass``) with logits ``parameter``."""
        return NegativeBinomial(
            self.total_count,
            logits=parameter,
            estimator=estimator,
            truncation=truncation,
            tail_mass=self.tail_mass,
            max_support=self.max_support,
        )


register(Poisson, hosts=(host.Poisson,))
register(Binomial, hosts=(host.BinomialProbs, host.BinomialLogits))
register(Geometric, hosts=(host.GeometricProbs, host.GeometricLogits))
register(NegativeBinomial, hosts=(host.NegativeBinomialProbs, host.NegativeBinomialLogits))
