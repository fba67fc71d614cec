import copy
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as host
from jax.scipy.special import logsumexp
from numpyro.distributions import Distribution, ExpandedDistribution, constraints
from numpyro.util import not_jax_tracer

from numpyro_redge._math import categorical_kl
from numpyro_redge.distributions.registry import register
from numpyro_redge.distributions.util import (
    check_estimator,
    check_value,
    estimator_is_pathwise,
    estimator_support,
    mask_outside_support,
)
from numpyro_redge.estimators import DEFAULT_ESTIMATOR
from redge_core import support
from redge_core.estimator_options import check_count_estimator


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


def _unvalidated_log_prob(distribution, value):
    """The host distribution's log-pmf at ``value``, without validation (a grid leaves the support)."""
    unvalidated = copy.copy(unexpanded(distribution))
    unvalidated._validate_args = False
    return unvalidated.log_prob(value)


def _log_pmf_on_grid(distribution, values, log_prob=_unvalidated_log_prob):
    """``log_prob(distribution, ·)`` on the 1-D grid ``values``, grid on the last axis, ``-inf``
    off the distribution's support."""
    batch_shape = distribution.batch_shape
    grid = jnp.reshape(values, (-1,) + (1,) * len(batch_shape))
    log_pmf = jnp.where(distribution.support(grid), log_prob(distribution, grid), -jnp.inf)
    return jnp.moveaxis(jnp.broadcast_to(log_pmf, (len(values),) + batch_shape), 0, -1)


def _needs_static_truncation(owner):
    return ValueError(
        f"{owner} needs a static truncation= under jax.jit or jax.vmap (the truncation point K is a "
        "shape and cannot be chosen from traced parameters): pass an integer truncation, e.g. one "
        "chosen outside jit/vmap with .truncation_point()."
    )


def _concrete(tree, owner):
    """``tree`` with concrete float64 NumPy leaves (primal values under ``grad``; constants closed
    over under ``jit``), or the ``ValueError`` that a static truncation is needed (traced values
    under ``jit`` or ``vmap`` are abstract). Only NumPy copies are made: the caller's arrays keep
    their dtype and buffers."""
    try:
        with jax.ensure_compile_time_eval():
            return jax.tree_util.tree_map(lambda leaf: np.array(jax.lax.stop_gradient(leaf), np.float64), tree)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as error:
        raise _needs_static_truncation(owner) from error


def _static_bound(bound, owner, reduce):
    """A support bound as a Python int (``reduce`` over a batch of bounds), ``None`` kept; a traced
    bound is the ``ValueError`` that a static truncation cannot help."""
    if bound is None or isinstance(bound, int):
        return bound
    try:
        with jax.ensure_compile_time_eval():
            array = np.asarray(jax.lax.stop_gradient(bound))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as error:
        raise ValueError(
            f"{owner}: the bounds of the base's support must be concrete (they fix the support's shape), "
            "not traced under jax.jit or jax.vmap"
        ) from error
    return int(reduce(array)) if array.size else None


def static_support_bounds(support, owner="ReparameterizedDiscrete"):
    """``(lower, upper)`` of an integer support as Python ints (the smallest lower and the largest
    upper bound over a batch of bounds); ``upper`` is ``None`` when unbounded."""
    lower, upper = support_bounds(support)
    lower = _static_bound(lower, owner, np.min)
    return 0 if lower is None else lower, _static_bound(upper, owner, np.max)


def _parameter_names(distribution):
    """The names of the host distribution's own parameters, for messages."""
    base = unexpanded(distribution)
    return ", ".join(name for name in base.arg_constraints if name in base.__dict__) or "its parameters"


def _float_dtype(distribution):
    """The floating dtype of the host distribution's parameters (their promotion; the default
    float when none is floating)."""
    dtypes = [
        jnp.result_type(leaf)
        for leaf in jax.tree_util.tree_leaves(unexpanded(distribution))
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    return jnp.result_type(*dtypes) if dtypes else jnp.result_type(float)


def _largest_exact_integer(dtype):
    """The largest ``n`` such that every integer in ``0..n`` is exact in the float ``dtype``."""
    return 2 ** (int(jnp.finfo(dtype).nmant) + 1)


def numpy_parameters(distribution, owner):
    """The host distribution's own parameters (those it was built with, under its expansion) as
    float64 NumPy arrays, from concrete values (outside ``jit``), or the ``ValueError`` that a
    static truncation is needed."""
    base = unexpanded(distribution)
    exact = _concrete(base, owner)
    return {name: np.asarray(value, np.float64) for name, value in vars(exact).items() if name in base.arg_constraints}


def _find_window(
    distribution,
    tail_mass,
    log_prob=_unvalidated_log_prob,
    owner=None,
    max_support=support.DEFAULT_MAX_SUPPORT,
    law=None,
):
    """The window ``(L, K)`` of a host distribution with an integer support, by
    :func:`redge_core.support.support_window`: from the frozen SciPy ``law`` when given, else on
    its float64 log-pmf, from concrete parameters (outside ``jit``: the window is a shape); at most
    ``max_support`` values, or a ``ValueError`` naming the parameters and the cap."""
    owner = owner or type(distribution).__name__
    names = _parameter_names(distribution)
    if law is not None:
        lower, upper = static_support_bounds(distribution.support, owner)
        return support.support_window(lower, upper, tail_mass, max_support, owner, names, law=law)
    exact = _concrete(distribution, owner)
    # In float64: the tail is 1 − CDF, resolved to ~1e-13 only if the pmf is float64; eagerly, also
    # while a jit traces a function over constant parameters.
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        exact = jax.tree_util.tree_map(jnp.asarray, exact)
        lower, upper = static_support_bounds(exact.support, owner)
        try:
            mean, stddev = np.asarray(exact.mean), np.sqrt(np.asarray(exact.variance))
        except NotImplementedError:
            mean = stddev = None
        return support.support_window(
            lower,
            upper,
            tail_mass,
            max_support,
            owner,
            names,
            log_pmf_on=lambda values: np.asarray(_log_pmf_on_grid(exact, jnp.asarray(values), log_prob)),
            guess=support.truncation_guess(mean, stddev, lower),
        )


# Eagerly, JAX compiles each operation for each new shape: a count distribution (a grid of its
# window's size, an estimator of tens of operations) took seconds per new window, every call. Its
# sampling, scoring and moments run as one compiled program per pytree structure, window and
# shape instead (the distribution is a pytree; under an outer jit or grad they are inlined).
@functools.partial(jax.jit, static_argnames=("sample_shape",))
def _compiled_sample(distribution, key, sample_shape):
    return distribution._sample(key, sample_shape)


@jax.jit
def _compiled_log_prob(distribution, value):
    return distribution._log_prob(value)


@jax.jit
def _compiled_moments(distribution):
    return distribution._moments()


class ReparameterizedDiscrete(Distribution):
    r"""Reparameterizes any discrete distribution with an integer support (the generalized
    Gumbel-softmax construction): the support is truncated to a window :math:`\{L, \dots, K\}`, the
    categorical over it is drawn by a gradient estimator as a hard one-hot :math:`D`, and mapped
    linearly to the value,

    .. math:: N = \sum_k D_k\,k, \qquad \log p(N) = \log p_{\text{base}}(N) - \log \sum_{k=L}^{K} p_{\text{base}}(k).

    The value is an integer-valued float (bitwise); its gradient reaches the base's parameters
    through the estimator's surrogate and the base's log-pmf on the grid.

    **Window.** With ``truncation=None``, the support kept is the window :math:`\{L, \dots, K\}`:
    ``K`` is the smallest count whose upper tail mass :math:`P(N > K)` is below ``tail_mass`` for
    every batch element, ``L`` the largest whose lower tail mass :math:`P(N < L)` is, so the cost
    follows the law's spread, not its mean (a Poisson of rate 10⁶ keeps about 10⁴ values). It is
    found once per instance, at construction, from the (concrete) parameters, and kept by
    :meth:`expand` and through ``jax.jit`` (it is static pytree data); the named count classes find
    it from SciPy's quantiles (work per batch element), the generic class from the base's log-pmf
    on a grid from the support's lower bound (work ``batch × K``). The window is a shape: a
    distribution built under ``jax.jit`` (e.g. in NumPyro's ``SVI.run``) has traced parameters and
    needs a static ``truncation``, an integer ``K`` (the window :math:`\{l, \dots, K\}`, ``l`` the
    support's lower bound) or a pair ``(L, K)``; its absence is a ``ValueError`` saying so, at the
    first use. :meth:`dropped_mass` reports the mass of both tails that is cut. Samples stay in the
    window; ``log_prob`` is the base pmf renormalised on the window (differentiable in the
    parameters), and for a value outside it it continues with the same renormalised base pmf
    instead of returning ``-inf``, so that an ELBO stays finite; the difference is bounded by the
    dropped mass.

    The support is not ``is_discrete`` for NumPyro's inference code, for the reason given in
    :mod:`numpyro_redge.distributions.util`.

    **Limits.** No support exceeds ``max_support`` values (``K − l + 1``; default
    :data:`redge_core.support.DEFAULT_MAX_SUPPORT`, 10⁶): a request that would need more (a
    ``truncation=`` beyond it, or parameters whose window reaches beyond it, such as
    ``Geometric(logits=-30)``), parameters with an infinite mean (``rate=inf``), no mass at all
    (``Geometric(probs=0.)``) or a NaN log-pmf is a ``ValueError`` naming the arguments and the cap,
    raised before anything larger is allocated. ``tail_mass`` is at least
    :data:`redge_core.support.MIN_TAIL_MASS` (1e-12), the smallest tail the float64 search resolves.

    **Precision, empty batches, vmap.** The support and the log-pmf are computed in at least the
    default float dtype (the search in float64); values are returned in the parameters' dtype where
    it holds every count of the support exactly (float16 up to 2048, bfloat16 up to 256), else in
    the compute dtype; ``log_prob`` and moments in the parameters' dtype. An empty batch gives
    empty results. ``jax.vmap`` over a function that builds the distribution needs a static
    ``truncation=`` (as ``jit`` does); ``vmap`` over an instance is refused with a ``ValueError``
    (its batch shape is static pytree data, as for NumPyro's own distributions).

    :param base: a NumPyro discrete distribution with an integer support and empty event shape.
    :param estimator: a gradient estimator from :mod:`numpyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~numpyro_redge.estimators.DEFAULT_ESTIMATOR`).
    :param truncation: the largest value kept ``K``, or the window ``(L, K)``, or ``None`` to choose
        the window from ``tail_mass``.
    :param float tail_mass: the largest mass each tail may drop, in ``[1e-12, 1)``.
    :param int max_support: the largest number of values the support may keep (default 10⁶).

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> import numpyro.distributions as dist
    >>> from numpyro_redge import ReparameterizedDiscrete
    >>> d = ReparameterizedDiscrete(dist.Poisson(jnp.array([1.0, 3.0])), truncation=20)
    >>> d.support_window(), d.batch_shape
    ((0, 20), (2,))
    >>> d.sample(jax.random.PRNGKey(0)).shape
    (2,)

    **References**

    [1] `Generalized Gumbel-Softmax Gradient Estimator for Generic Discrete Random Variables`,
        Weonyoung Joo, Dongjun Kim, Seungjae Shin, Il-Chul Moon (2020), arXiv:2003.01847
    """

    arg_constraints = {}
    pytree_data_fields = ("base",)
    pytree_aux_fields = ("estimator", "truncation", "tail_mass", "max_support", "_window", "_lower")
    #: ``log_prob(base, value)``: the base's log-pmf, without validation.
    _log_prob_of = staticmethod(_unvalidated_log_prob)

    def __init__(
        self,
        base,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=support.DEFAULT_TAIL_MASS,
        *,
        validate_args=None,
        max_support=support.DEFAULT_MAX_SUPPORT,
    ):
        if not isinstance(base, Distribution):
            raise ValueError(f"base must be a NumPyro distribution, got {base!r}")
        if base.event_shape != ():
            raise ValueError(f"base must have an empty event shape, got {tuple(base.event_shape)}")
        self._lower, _ = static_support_bounds(base.support, type(self).__name__)
        self.tail_mass = support.check_tail_mass(tail_mass)
        self.max_support = support.check_max_support(max_support)
        self._window = support.check_truncation(truncation, self._lower, self.max_support)
        self.truncation = tuple(truncation) if isinstance(truncation, (tuple, list)) else truncation
        self.base = base
        self.estimator = check_count_estimator(check_estimator(estimator, type(self).__name__), type(self).__name__)
        if self._window is None:
            try:
                self._window = self._search()
            except ValueError:
                # Traced parameters: the first use repeats the search, and raises if they still are.
                if all(not_jax_tracer(leaf) for leaf in jax.tree_util.tree_leaves(base)):
                    raise
        super().__init__(batch_shape=base.batch_shape, validate_args=validate_args)

    def _search(self):
        owner = type(self).__name__
        return _find_window(self.base, self.tail_mass, self._log_prob_of, owner, self.max_support, self._scipy_law())

    def _scipy_law(self):
        """The frozen SciPy law of the named count families (their window comes from its quantiles),
        ``None`` for a generic base (its window comes from the log-pmf on a grid)."""
        return None

    @classmethod
    def infer_shapes(cls, *args, **kwargs):
        """``(batch_shape, event_shape)`` from the shapes of the parameters: their broadcast shape,
        and an empty event shape (the ``base`` of the generic class is a distribution: give its
        batch shape)."""
        shapes = [tuple(shape) for name, shape in kwargs.items() if name in cls.arg_constraints or name == "base"]
        shapes += [tuple(shape) for shape in args if isinstance(shape, tuple)]
        return tuple(jax.lax.broadcast_shapes(*shapes)) if shapes else (), ()

    @property
    def support(self):
        return estimator_support(self, _ReparameterizedInteger(self.base.support))

    has_rsample = estimator_is_pathwise

    def expand(self, batch_shape):
        """The same class over the expanded base, keeping the estimator and the truncation point."""
        new = copy.copy(self)
        new.base = self.base.expand(batch_shape)
        Distribution.__init__(new, batch_shape=new.base.batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours over the host distribution ``fn`` (any integer support, empty event shape)."""
        return cls(fn, estimator=estimator, truncation=truncation)

    def _dtypes(self):
        """``(parameter dtype, compute dtype, value dtype)``: see the class docstring."""
        dtype = _float_dtype(self.base)
        compute = jnp.result_type(float)
        exact = self.support_window()[1] <= _largest_exact_integer(dtype)
        return dtype, compute, dtype if exact else compute

    def _check_not_vmapped(self):
        """``jax.vmap`` over an instance leaves its static batch shape stale (the parameters lose
        the mapped axis, the pytree aux data does not): refused, not silently broadcast."""
        base = unexpanded(self.base)
        shapes = [jnp.shape(value) for value in base.get_args().values()]
        if shapes and tuple(jax.lax.broadcast_shapes(*shapes)) != tuple(base.batch_shape):
            raise ValueError(
                f"{type(self).__name__}: its parameters have the shape {jax.lax.broadcast_shapes(*shapes)} but its "
                f"batch_shape is {tuple(base.batch_shape)} (jax.vmap over a distribution instance?); vmap a function "
                "that builds it instead, with a static truncation= (e.g. .truncation_point() of an instance built "
                "outside vmap)"
            )

    def _base_log_prob(self, value):
        """The base's log-pmf at ``value`` (in the compute dtype), without validation (the grid
        leaves the support)."""
        return self._log_prob_of(self.base, jnp.asarray(value, jnp.result_type(float)))

    def _grid_log_pmf(self, values):
        """The base log-pmf on ``values`` (1-D), grid on the last axis, ``-inf`` off the support."""
        self._check_not_vmapped()
        return _log_pmf_on_grid(self.base, values, self._log_prob_of)

    def support_window(self):
        """``(L, K)``, the smallest and the largest value kept: fixed by ``truncation``, or chosen
        from ``tail_mass`` and the parameters when the instance was built."""
        if self._window is None:
            self._window = self._search()
        return self._window

    def truncation_point(self):
        """``K``, the largest value kept (the end of :meth:`support_window`)."""
        return self.support_window()[1]

    def _support_values(self):
        """The kept values ``L..K``, in the default float dtype."""
        first, last = self.support_window()
        return jnp.arange(first, last + 1, dtype=jnp.result_type(float))

    def _support_and_log_pmf(self):
        """The kept values ``L..K`` and the log-pmf on them (batch × grid), unnormalised."""
        values = self._support_values()
        return values, self._grid_log_pmf(values)

    def dropped_mass(self):
        """``P(N < L) + P(N > K)`` under the base, per batch element: the mass the window cuts
        (computed in float64 on concrete parameters)."""
        window = self.support_window()
        dtype, _, _ = self._dtypes()
        law = self._scipy_law()
        if law is not None:
            return jnp.asarray(np.broadcast_to(support.quantile_dropped_mass(law, window), self.batch_shape), dtype)
        exact = _concrete(self.base, type(self).__name__)
        with jax.enable_x64(True), jax.ensure_compile_time_eval():
            exact = jax.tree_util.tree_map(jnp.asarray, exact)
            values = jnp.arange(self._lower, window[1] + 1, dtype=jnp.float64)
            log_pmf = np.asarray(_log_pmf_on_grid(exact, values, self._log_prob_of))
        return jnp.asarray(support.grid_dropped_mass(log_pmf, self._lower, window), dtype)

    def log_prob_on_grid(self, values):
        """``log_prob`` of each value of a 1-D grid, grid on the last axis: ``-inf`` off the base's
        support, no validation error (for exact sums over a support, as in the KL)."""
        dtype, compute, _ = self._dtypes()
        _, log_pmf = self._support_and_log_pmf()
        grid = self._grid_log_pmf(jnp.asarray(values, compute))
        return (grid - logsumexp(log_pmf, axis=-1, keepdims=True)).astype(dtype)

    def sample(self, key, sample_shape=()):
        return _compiled_sample(self, key, tuple(sample_shape))

    def _sample(self, key, sample_shape):
        _, _, value_dtype = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        shape = tuple(sample_shape) + self.batch_shape + values.shape
        if 0 in shape:  # nothing to draw (an empty batch or sample shape): no estimator call
            return jnp.zeros(shape[:-1], value_dtype)
        one_hot = self.estimator(key, jnp.broadcast_to(log_pmf, shape))
        return (one_hot * values).sum(-1).astype(value_dtype)

    def log_prob(self, value):
        inside = check_value(self, value)
        return mask_outside_support(inside, _compiled_log_prob(self, value))

    def _log_prob(self, value):
        dtype, _, _ = self._dtypes()
        _, log_pmf = self._support_and_log_pmf()
        return (self._base_log_prob(value) - logsumexp(log_pmf, axis=-1)).astype(dtype)

    def enumerate_support(self, expand=True):
        _, _, value_dtype = self._dtypes()
        values = self._support_values().astype(value_dtype)
        values = jnp.reshape(values, (-1,) + (1,) * len(self.batch_shape))
        if expand:
            values = jnp.broadcast_to(values, (len(values),) + self.batch_shape)
        return values

    @property
    def mean(self):
        return _compiled_moments(self)[0]

    @property
    def variance(self):
        return _compiled_moments(self)[1]

    def _moments(self):
        """The mean and the variance of the law on the window, in the parameters' dtype."""
        dtype, _, _ = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        probs = jax.nn.softmax(log_pmf, -1)
        mean = (probs * values).sum(-1, keepdims=True)
        return mean[..., 0].astype(dtype), (probs * (values - mean) ** 2).sum(-1).astype(dtype)

    @property
    def mode(self):
        """The most probable kept value of each batch element (the smallest, on a tie), in the
        value's shape and dtype."""
        _, _, value_dtype = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        return values[jnp.argmax(jax.lax.stop_gradient(log_pmf), -1)].astype(value_dtype)

    @staticmethod
    def kl_divergence(p, q):
        r"""Exact :math:`\mathrm{KL}(p\,\|\,q) = \sum_k p(k) \log(p(k)/q(k))` over the support of
        ``p``, each argument a distribution of ours with an integer support or a host count
        distribution. Ours is truncated, so the sum is exact; a host ``p`` is summed over the window
        where both its tails drop below the default ``tail_mass`` (1e-6), exact to that dropped mass."""
        if isinstance(p, ReparameterizedDiscrete):
            values = p._support_values()
        else:
            first, last = _find_window(p, support.DEFAULT_TAIL_MASS, owner="kl_divergence")
            values = jnp.arange(first, last + 1, dtype=jnp.result_type(float))
        return categorical_kl(_count_log_pmf_on_grid(p, values), _count_log_pmf_on_grid(q, values))

    def guide_parameter(self):
        """A generic base has no known learnable parameter: a ``ValueError`` (the named count
        classes override this)."""
        raise self._no_guide()

    def guide(self, parameter, estimator, truncation=None):
        """A generic base has no known learnable parameter: a ``ValueError`` (the named count
        classes override this)."""
        raise self._no_guide()

    def _no_guide(self):
        return ValueError(
            f"{type(self).__name__} over {type(self.base).__name__} has no mean-field guide parameter: write the "
            "site with a count distribution that has one (Poisson, Binomial, Geometric, NegativeBinomial) or write "
            "its guide by hand"
        )


def _count_log_pmf_on_grid(distribution, values):
    """The log-pmf of ours (normalised on its support) or of a host distribution on a 1-D grid,
    grid on the last axis, ``-inf`` off the support."""
    if isinstance(distribution, ReparameterizedDiscrete):
        return distribution.log_prob_on_grid(values)
    return _log_pmf_on_grid(distribution, values)


class Relaxed(ReparameterizedDiscrete):
    """Deprecated alias of :class:`ReparameterizedDiscrete` (the old name: its samples are hard,
    not relaxed). Building one emits a ``FutureWarning``."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "numpyro_redge.Relaxed is deprecated and will be removed; use numpyro_redge.ReparameterizedDiscrete "
            "(the same class: its samples are hard, not relaxed)",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)


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


# The generic mechanism covers every host count distribution (as the exact KL always has; NumPyro's
# NegativeBinomialProbs/Logits and NegativeBinomial2 are GammaPoisson subclasses); the named
# classes of ``counts`` register later for their own host classes, and replace them under
# ``RelaxReparam`` with their own parameters.
register(
    ReparameterizedDiscrete,
    hosts=(
        host.Poisson,
        host.BinomialProbs,
        host.BinomialLogits,
        host.GeometricProbs,
        host.GeometricLogits,
        host.GammaPoisson,
    ),
)
