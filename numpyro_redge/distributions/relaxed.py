import copy
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.distributions import Distribution, ExpandedDistribution, constraints

from numpyro_redge._math import truncation_point, upper_tail_mass
from numpyro_redge.distributions.util import check_estimator, check_value
from numpyro_redge.estimators import ReDGE


def support_bounds(support):
    """``(lower, upper)`` of an integer support; ``upper`` is ``None`` when unbounded, an array
    when it varies over the batch. A ``ValueError`` for any other support."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.nonnegative_integer:
        return 0, None
    if support is constraints.boolean:
        return 0, 1
    if isinstance(support, constraints.integer_interval):
        return support.lower_bound, support.upper_bound
    if isinstance(support, constraints.integer_greater_than):
        return support.lower_bound, None
    raise ValueError(
        "base must have an integer support (nonnegative_integer, integer_interval, boolean or "
        f"integer_greater_than), got {support}"
    )


def unexpanded(base):
    """The host distribution under NumPyro's ``ExpandedDistribution`` wrappers (its parameters
    broadcast against the expanded batch shape)."""
    while isinstance(base, ExpandedDistribution):
        base = base.base_dist
    return base


def _concrete(tree, owner):
    """``tree`` with concrete float64 leaves (primal values under ``grad``), or the ``ValueError``
    that a static truncation is needed (under ``jit``, the values are abstract)."""
    try:
        return jax.tree_util.tree_map(lambda leaf: np.asarray(jax.lax.stop_gradient(leaf), np.float64), tree)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as error:
        raise ValueError(
            f"{owner} needs a static truncation= under jax.jit (the truncation point K is a shape "
            "and cannot be chosen from traced parameters): pass an integer truncation, e.g. one "
            "chosen outside jit with .truncation_point()."
        ) from error


class Relaxed(Distribution):
    r"""Reparameterizes any discrete distribution with an integer support (the generalized
    Gumbel-softmax construction): the support is truncated to :math:`\{l, \dots, K\}`, the
    categorical over it is drawn by a gradient estimator as a hard one-hot :math:`D`, and mapped
    linearly to the value,

    .. math:: N = \sum_k D_k\,k, \qquad \log p(N) = \log p_{\text{base}}(N) - \log \sum_{k=l}^{K} p_{\text{base}}(k).

    The value is an integer-valued float (bitwise); its gradient reaches the base's parameters
    through the estimator's surrogate and the base's log-pmf on the grid.

    **Truncation.** With ``truncation=None``, ``K`` is the smallest count whose upper tail mass
    :math:`P(N > K)` is below ``tail_mass`` for every batch element, computed from the current
    (concrete) parameters. ``K`` is a shape: under ``jax.jit`` (e.g. NumPyro's ``SVI.run``) the
    parameters are traced and a static integer ``truncation`` is required; its absence is a
    ``ValueError`` saying so. :meth:`dropped_mass` reports the tail that is cut. Samples never
    exceed ``K``; ``log_prob`` is the base pmf renormalised on :math:`\{l, \dots, K\}`, and for a
    value above ``K`` it continues with the same renormalised base pmf instead of returning
    ``-inf``, so that an ELBO stays finite; the difference is bounded by the dropped mass.

    The support is not ``is_discrete`` for NumPyro's inference code, for the reason given in
    :mod:`numpyro_redge.distributions.util`.

    :param base: a NumPyro discrete distribution with an integer support and empty event shape.
    :param estimator: a gradient estimator from :mod:`numpyro_redge.estimators`; default
        :class:`~numpyro_redge.estimators.ReDGE`.
    :param int truncation: the largest value kept, or ``None`` to choose it from ``tail_mass``.
    :param float tail_mass: the largest upper tail mass that may be dropped, in (0, 1).

    **References**

    [1] `Generalized Gumbel-Softmax Gradient Estimator for Generic Discrete Random Variables`,
        Weonyoung Joo, Dongjun Kim, Seungjae Shin, Il-Chul Moon (2020), arXiv:2003.01847
    """

    arg_constraints = {}
    pytree_data_fields = ("base",)
    pytree_aux_fields = ("estimator", "truncation", "tail_mass")

    def __init__(self, base, estimator=ReDGE(), truncation=None, tail_mass=1e-6, *, validate_args=None):
        if not isinstance(base, Distribution):
            raise ValueError(f"base must be a NumPyro distribution, got {base!r}")
        if base.event_shape != ():
            raise ValueError(f"base must have an empty event shape, got {tuple(base.event_shape)}")
        lower, _ = support_bounds(base.support)
        if isinstance(tail_mass, bool) or not isinstance(tail_mass, numbers.Real) or not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be a real number in the open interval (0, 1), got {tail_mass!r}")
        if truncation is not None and (
            isinstance(truncation, bool) or not isinstance(truncation, numbers.Integral) or truncation < lower
        ):
            raise ValueError(
                f"truncation must be None or an integer >= {lower} (the support's lower bound), got {truncation!r}"
            )
        self.base = base
        self.estimator = check_estimator(estimator, type(self).__name__)
        self.truncation = None if truncation is None else int(truncation)
        self.tail_mass = float(tail_mass)
        super().__init__(batch_shape=base.batch_shape, validate_args=validate_args)

    @property
    def support(self):
        return _ReparameterizedInteger(self.base.support)

    @property
    def has_rsample(self):
        return True

    def expand(self, batch_shape):
        """The same class over the expanded base, keeping the estimator and the truncation."""
        new = copy.copy(self)
        new.base = self.base.expand(batch_shape)
        Distribution.__init__(new, batch_shape=new.base.batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _base_log_prob(self, value):
        """The base's log-pmf at ``value``, without validation (the grid leaves the support)."""
        unvalidated = copy.copy(unexpanded(self.base))
        unvalidated._validate_args = False
        return unvalidated.log_prob(value)

    def _grid_log_pmf(self, values):
        """The base log-pmf on ``values`` (1-D), grid on the last axis, ``-inf`` off the support."""
        grid = jnp.reshape(values, (-1,) + (1,) * len(self.batch_shape))
        log_pmf = jnp.where(self.base.support(grid), self._base_log_prob(grid), -jnp.inf)
        return jnp.moveaxis(jnp.broadcast_to(log_pmf, (len(values),) + self.batch_shape), 0, -1)

    def _truncation_guess(self, lower):
        try:
            mean, variance = np.asarray(self.base.mean), np.asarray(self.base.variance)
        except NotImplementedError:
            return lower + 64
        return math.ceil(float(np.max(mean + 8 * np.sqrt(variance)))) + 10

    def truncation_point(self):
        """``K``, the largest value kept (fixed, or chosen from ``tail_mass`` and the parameters)."""
        if self.truncation is not None:
            return self.truncation
        relaxed64 = copy.copy(self)
        with jax.enable_x64(True):
            # In float64: the tail is 1 − CDF, resolved to ~1e-13 only if the pmf is float64.
            relaxed64.base = jax.tree_util.tree_map(jnp.asarray, _concrete(self.base, type(self).__name__))
            lower, upper = support_bounds(relaxed64.base.support)
            if upper is not None:
                upper = int(np.max(upper))
            return truncation_point(
                lambda values: np.asarray(relaxed64._grid_log_pmf(jnp.asarray(values))),
                lower,
                self.tail_mass,
                relaxed64._truncation_guess(lower),
                upper,
            )

    def _support_and_log_pmf(self):
        """The kept values ``l..K`` and the log-pmf on them (batch × grid), unnormalised."""
        lower, _ = support_bounds(self.base.support)
        values = jnp.arange(lower, self.truncation_point() + 1, dtype=jnp.result_type(float))
        return values, self._grid_log_pmf(values)

    def dropped_mass(self):
        """``P(N > K)`` under the base, per batch element: the mass the truncation cuts
        (computed in float64 on concrete parameters)."""
        K = self.truncation_point()
        relaxed64 = copy.copy(self)
        with jax.enable_x64(True):
            relaxed64.base = jax.tree_util.tree_map(jnp.asarray, _concrete(self.base, type(self).__name__))
            lower, _ = support_bounds(relaxed64.base.support)
            log_pmf = relaxed64._grid_log_pmf(jnp.arange(lower, K + 1, dtype=jnp.float64))
            tail = upper_tail_mass(log_pmf)[..., -1]
        return jnp.asarray(tail, jnp.result_type(float))

    def log_prob_on_grid(self, values):
        """``log_prob`` of each value of a 1-D grid, grid on the last axis: ``-inf`` off the base's
        support, no validation error (for exact sums over a support, as in the KL)."""
        _, log_pmf = self._support_and_log_pmf()
        return self._grid_log_pmf(values) - logsumexp(log_pmf, axis=-1, keepdims=True)

    def sample(self, key, sample_shape=()):
        values, log_pmf = self._support_and_log_pmf()
        shape = tuple(sample_shape) + self.batch_shape + values.shape
        one_hot = self.estimator(key, jnp.broadcast_to(log_pmf, shape))
        return (one_hot * values).sum(-1)

    def log_prob(self, value):
        check_value(self, value)
        _, log_pmf = self._support_and_log_pmf()
        return self._base_log_prob(value) - logsumexp(log_pmf, axis=-1)

    def enumerate_support(self, expand=True):
        values, _ = self._support_and_log_pmf()
        values = jnp.reshape(values, (-1,) + (1,) * len(self.batch_shape))
        if expand:
            values = jnp.broadcast_to(values, (len(values),) + self.batch_shape)
        return values

    @property
    def mean(self):
        values, log_pmf = self._support_and_log_pmf()
        return (jax.nn.softmax(log_pmf, -1) * values).sum(-1)

    @property
    def variance(self):
        values, log_pmf = self._support_and_log_pmf()
        probs = jax.nn.softmax(log_pmf, -1)
        mean = (probs * values).sum(-1, keepdims=True)
        return (probs * (values - mean) ** 2).sum(-1)


class _ReparameterizedInteger(constraints.Constraint):
    """The base's integer support, but not ``is_discrete``: the values carry a pathwise gradient
    (see :mod:`numpyro_redge.distributions.util`)."""

    is_discrete = False
    event_dim = 0

    def __init__(self, base_support):
        self.base_support = base_support

    def __call__(self, x):
        return self.base_support(x)

    def feasible_like(self, prototype):
        return self.base_support.feasible_like(prototype)

    def tree_flatten(self):
        return (self.base_support,), (("base_support",), dict())

    def __repr__(self):
        return f"ReparameterizedInteger({self.base_support})"
