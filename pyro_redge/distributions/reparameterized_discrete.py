import copy
import math
import warnings

import numpy as np
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from pyro_redge._math import categorical_kl
from pyro_redge.distributions.registry import register
from pyro_redge.distributions.util import EstimatorSampling, check_estimator
from pyro_redge.estimators import DEFAULT_ESTIMATOR
from redge_core import support
from redge_core.estimator_options import check_count_estimator


def support_bounds(support):
    """``(lower, upper)`` of an integer support; ``upper`` is ``None`` when unbounded, a tensor
    when it varies over the batch. A ``ValueError`` for any other support."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.nonnegative_integer:
        return 0, None
    if support is constraints.boolean:
        return 0, 1
    if isinstance(support, constraints.integer_interval):
        return support.lower_bound, support.upper_bound
    if isinstance(support, constraints._IntegerGreaterThan):
        return support.lower_bound, None
    raise ValueError(
        "base must have an integer support (nonnegative_integer, integer_interval, boolean or "
        f"integer_greater_than), got {support}"
    )


def _unvalidated_log_prob(distribution, value):
    """The host distribution's log-pmf at ``value``, without validation (a grid leaves the support)."""
    unvalidated = copy.copy(distribution)
    unvalidated._validate_args = False
    return unvalidated.log_prob(value)


def _log_pmf_on_grid(distribution, values, log_prob=_unvalidated_log_prob):
    """``log_prob(distribution, ·)`` on the 1-D grid ``values``, grid on the last axis, ``-inf``
    off the distribution's support."""
    batch_shape = distribution.batch_shape
    grid = values.reshape((-1,) + (1,) * len(batch_shape))
    log_pmf = torch.where(distribution.support.check(grid), log_prob(distribution, grid), -torch.inf)
    return log_pmf.expand((len(values),) + batch_shape).movedim(0, -1)


def _parameter_dtype(distribution):
    for name in ("rate", "probs", "logits", "total_count"):
        value = distribution.__dict__.get(name)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()


def _compute_dtype(dtype):
    """The dtype the log-pmf is computed in: the parameters' own, at least float32 (a half-precision
    grid cannot even hold the counts above 2048, nor ``lgamma`` of them)."""
    return torch.promote_types(dtype, torch.float32)


def _largest_exact_integer(dtype):
    """The largest ``n`` such that every integer in ``0..n`` is exact in the float ``dtype``."""
    return 2 ** (round(-math.log2(torch.finfo(dtype).eps)) + 1)


def _parameter_names(distribution):
    """The names of the host distribution's own parameters, for messages."""
    names = [name for name in distribution.arg_constraints if name in distribution.__dict__]
    return ", ".join(names) or "its parameters"


def _parameter_device(distribution):
    for value in distribution.__dict__.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _cast(distribution, dtype, detach=False):
    """A copy whose floating parameters are in ``dtype`` (``detach``: without gradients; otherwise the
    cast is differentiable), or ``distribution`` itself when they already are."""
    tensors = {
        name: value
        for name, value in distribution.__dict__.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    if not detach and all(value.dtype == dtype for value in tensors.values()):
        return distribution
    copied = copy.copy(distribution)
    for name, value in tensors.items():
        setattr(copied, name, (value.detach() if detach else value).to(dtype))
    return copied


def _float64(distribution):
    """A copy whose floating parameters are float64, without gradients: the tail is 1 − CDF,
    resolved to ~1e-13 only if the pmf is float64."""
    return _cast(distribution, torch.float64, detach=True)


def _numpy_parameters(distribution):
    """The host distribution's own floating parameters (those it was built with) as float64 NumPy
    arrays: one host synchronisation, for the window search."""
    return {
        name: value.detach().to("cpu", torch.float64).numpy()
        for name, value in distribution.__dict__.items()
        if name in distribution.arg_constraints and isinstance(value, torch.Tensor)
    }


def _find_window(
    distribution,
    tail_mass,
    log_prob=_unvalidated_log_prob,
    max_support=support.DEFAULT_MAX_SUPPORT,
    owner=None,
    law=None,
):
    """The window ``(L, K)`` of a host distribution with an integer support, by
    :func:`redge_core.support.support_window`: from the frozen SciPy ``law`` when given, else on
    the float64 log-pmf (one host synchronisation: the window is a shape); at most
    ``max_support`` values, or a ``ValueError`` naming the parameters and the cap."""
    lower, upper = support_bounds(distribution.support)
    if isinstance(upper, torch.Tensor):
        upper = int(upper.max().item()) if upper.numel() else lower
    owner, names = owner or type(distribution).__name__, _parameter_names(distribution)
    if law is not None:
        return support.support_window(lower, upper, tail_mass, max_support, owner, names, law=law)
    exact = _float64(distribution)
    device = _parameter_device(distribution)
    try:
        mean, stddev = exact.mean.cpu().numpy(), exact.stddev.cpu().numpy()
    except NotImplementedError:
        mean = stddev = None

    def log_pmf_on(values):
        return _log_pmf_on_grid(exact, torch.as_tensor(values, device=device), log_prob).cpu().numpy()

    return support.support_window(
        lower,
        upper,
        tail_mass,
        max_support,
        owner,
        names,
        log_pmf_on=log_pmf_on,
        guess=support.truncation_guess(mean, stddev, lower),
    )


class ReparameterizedDiscrete(EstimatorSampling, TorchDistribution):
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
    found from the parameters once per instance, at its first use (one host synchronisation: the
    window is a shape), and kept by :meth:`expand`; the named count classes find it from SciPy's
    quantiles (work per batch element), the generic class from the base's log-pmf on a grid from
    the support's lower bound (work ``batch × K``). An integer ``truncation=K`` fixes the window
    to :math:`\{l, \dots, K\}` (``l`` the support's lower bound), a pair ``truncation=(L, K)`` to
    :math:`\{L, \dots, K\}`. A distribution is built for given parameter values: after changing
    them in place, build a new one. :meth:`dropped_mass` reports the mass of both tails that is
    cut. Samples stay in the window; ``log_prob`` is the base pmf renormalised on the window
    (differentiable in the parameters), and for a value outside it (which the sampler never draws,
    but another distribution's sample may be) it continues with the same renormalised base pmf
    instead of returning ``-inf``, so that an ELBO stays finite; the difference is bounded by the
    dropped mass.

    **Limits.** No support exceeds ``max_support`` values (``K − l + 1``; default
    :data:`redge_core.support.DEFAULT_MAX_SUPPORT`, 10⁶): a request that would need more (a
    ``truncation=`` beyond it, or parameters whose window reaches beyond it, such as
    ``Geometric(logits=-30)``), parameters with an infinite mean (``rate=inf``) or a NaN log-pmf is a
    ``ValueError`` naming the arguments and the cap, raised before anything larger is allocated.
    ``tail_mass`` is at least :data:`redge_core.support.MIN_TAIL_MASS` (1e-12), the smallest tail the
    float64 search resolves.

    **Precision and empty batches.** The support and the log-pmf are computed in the parameters'
    dtype, but at least float32 (the search in float64); values, ``log_prob``, moments and the
    dropped mass are returned in the parameters' dtype, values only where it holds every count of
    the support exactly (float16 up to 2048, bfloat16 up to 256), else in float32. An empty batch
    gives empty results.

    :param base: a host discrete distribution with an integer support and empty event shape.
    :param estimator: a gradient estimator from :mod:`pyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~pyro_redge.estimators.DEFAULT_ESTIMATOR`).
    :param truncation: the largest value kept ``K``, or the window ``(L, K)``, or ``None`` to choose
        the window from ``tail_mass``.
    :param float tail_mass: the largest mass each tail may drop, in ``[1e-12, 1)``.
    :param int max_support: the largest number of values the support may keep (default 10⁶).

    **Example**

    >>> import torch
    >>> import pyro.distributions as dist
    >>> from pyro_redge import ReparameterizedDiscrete
    >>> d = ReparameterizedDiscrete(dist.Poisson(torch.tensor([1.0, 3.0])), truncation=20)
    >>> d.support_window(), d.batch_shape
    ((0, 20), torch.Size([2]))
    >>> d.rsample().shape
    torch.Size([2])

    **References**

    [1] `Generalized Gumbel-Softmax Gradient Estimator for Generic Discrete Random Variables`,
        Weonyoung Joo, Dongjun Kim, Seungjae Shin, Il-Chul Moon (2020), arXiv:2003.01847
    """

    arg_constraints = {}
    #: ``log_prob(base, value)``: the base's log-pmf, without validation.
    _log_prob_of = staticmethod(_unvalidated_log_prob)

    def __init__(
        self,
        base,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=support.DEFAULT_TAIL_MASS,
        validate_args=None,
        max_support=support.DEFAULT_MAX_SUPPORT,
    ):
        if not isinstance(base, torch.distributions.Distribution):
            raise ValueError(f"base must be a torch/Pyro distribution, got {base!r}")
        if base.event_shape != ():
            raise ValueError(f"base must have an empty event shape, got {tuple(base.event_shape)}")
        self._lower, self._upper = support_bounds(base.support)
        self.tail_mass = support.check_tail_mass(tail_mass)
        self.max_support = support.check_max_support(max_support)
        self._window = support.check_truncation(truncation, self._lower, self.max_support)
        self.truncation = tuple(truncation) if isinstance(truncation, (tuple, list)) else truncation
        self.base = base
        self.estimator = check_count_estimator(check_estimator(estimator, type(self).__name__), type(self).__name__)
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.base.support

    @classmethod
    def infer_shapes(cls, **arg_shapes):
        """``(batch_shape, event_shape)`` from the shapes of the parameters: their broadcast shape,
        and an empty event shape (the ``base`` of the generic class is a distribution, not an
        array: its batch shape is the batch shape)."""
        shapes = [tuple(shape) for name, shape in arg_shapes.items() if name in cls.arg_constraints]
        if "base" in arg_shapes:
            shapes.append(tuple(arg_shapes["base"]))
        return torch.Size(torch.broadcast_shapes(*shapes)), torch.Size()

    def expand(self, batch_shape, _instance=None):
        """The same class over the expanded base, keeping the estimator, the truncation and the
        support window."""
        new = self._get_checked_instance(ReparameterizedDiscrete, _instance)
        new.base = self.base.expand(batch_shape)
        new.estimator = self.estimator
        new.truncation = self.truncation
        new.tail_mass = self.tail_mass
        new.max_support = self.max_support
        new._lower, new._upper = support_bounds(new.base.support)
        # The same parameters, broadcast: the same window, without a second search.
        new._window = self._window
        super(ReparameterizedDiscrete, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours over the host distribution ``fn`` (any integer support, empty event shape)."""
        return cls(fn, estimator=estimator, truncation=truncation)

    def _dtypes(self):
        """``(parameter dtype, compute dtype, value dtype)``: see the class docstring."""
        dtype = _parameter_dtype(self.base)
        compute = _compute_dtype(dtype)
        exact = self.support_window()[1] <= _largest_exact_integer(dtype)
        return dtype, compute, dtype if exact else compute

    def _computing_base(self):
        """The base with its floating parameters in the compute dtype (itself unless they are in
        half precision; the cast is differentiable)."""
        return _cast(self.base, _compute_dtype(_parameter_dtype(self.base)))

    def _base_log_prob(self, value):
        """The base's log-pmf at ``value`` in the compute dtype, without validation (the grid
        leaves the support)."""
        base = self._computing_base()
        return self._log_prob_of(base, value.to(_compute_dtype(_parameter_dtype(self.base))))

    def _grid_log_pmf(self, values):
        """The base log-pmf on ``values`` (1-D, in the compute dtype), grid on the last axis,
        ``-inf`` off the support."""
        return _log_pmf_on_grid(self._computing_base(), values, self._log_prob_of)

    def log_prob_on_grid(self, values):
        """``log_prob`` of each value of a 1-D grid, grid on the last axis: ``-inf`` off the base's
        support, no validation error (for exact sums over a support, as in the KL)."""
        dtype, compute, _ = self._dtypes()
        _, log_pmf = self._support_and_log_pmf()
        grid = self._grid_log_pmf(values.to(compute))
        return (grid - torch.logsumexp(log_pmf, dim=-1, keepdim=True)).to(dtype)

    def _scipy_law(self):
        """The frozen SciPy law of the named count families (their window comes from its quantiles),
        ``None`` for a generic base (its window comes from the log-pmf on a grid)."""
        return None

    def support_window(self):
        """``(L, K)``, the smallest and the largest value kept: fixed by ``truncation``, or chosen
        from ``tail_mass`` and the parameters at the first call, then kept by the instance."""
        if self._window is None:
            self._window = _find_window(
                self.base, self.tail_mass, self._log_prob_of, self.max_support, type(self).__name__, self._scipy_law()
            )
        return self._window

    def truncation_point(self):
        """``K``, the largest value kept (the end of :meth:`support_window`)."""
        return self.support_window()[1]

    def _support_values(self):
        """The kept values ``L..K``, in the compute dtype and the parameters' device."""
        first, last = self.support_window()
        return torch.arange(
            first,
            last + 1,
            dtype=_compute_dtype(_parameter_dtype(self.base)),
            device=_parameter_device(self.base),
        )

    def _support_and_log_pmf(self):
        """The kept values ``L..K`` and the log-pmf on them (batch × grid), unnormalised."""
        values = self._support_values()
        return values, self._grid_log_pmf(values)

    def dropped_mass(self):
        """``P(N < L) + P(N > K)`` under the base, per batch element: the mass the window cuts
        (computed in float64, returned in the parameters' dtype)."""
        device, window = _parameter_device(self.base), self.support_window()
        law = self._scipy_law()
        if law is not None:
            mass = np.broadcast_to(support.quantile_dropped_mass(law, window), self.batch_shape)
        else:
            values = torch.arange(self._lower, window[1] + 1, dtype=torch.float64, device=device)
            log_pmf = _log_pmf_on_grid(_float64(self.base), values, self._log_prob_of)
            mass = support.grid_dropped_mass(log_pmf.cpu().numpy(), self._lower, window)
        return torch.as_tensor(np.array(mass), dtype=_parameter_dtype(self.base), device=device)

    def _draw(self, sample_shape):
        _, _, value_dtype = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        shape = self._extended_shape(sample_shape) + values.shape
        if 0 in shape:  # nothing to draw (an empty batch or sample shape): no estimator call
            return log_pmf.new_zeros(shape[:-1], dtype=value_dtype)
        one_hot = self.estimator(log_pmf.expand(shape))
        return (one_hot * values).sum(-1).to(value_dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        dtype, _, _ = self._dtypes()
        _, log_pmf = self._support_and_log_pmf()
        return (self._base_log_prob(value) - torch.logsumexp(log_pmf, dim=-1)).to(dtype)

    def enumerate_support(self, expand=True):
        _, _, value_dtype = self._dtypes()
        values = self._support_values().to(value_dtype)
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))
        if expand:
            values = values.expand((len(values),) + self.batch_shape)
        return values

    @property
    def mean(self):
        dtype, _, _ = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        return (torch.softmax(log_pmf, -1) * values).sum(-1).to(dtype)

    @property
    def variance(self):
        dtype, _, _ = self._dtypes()
        values, log_pmf = self._support_and_log_pmf()
        probs = torch.softmax(log_pmf, -1)
        mean = (probs * values).sum(-1, keepdim=True)
        return (probs * (values - mean) ** 2).sum(-1).to(dtype)

    @property
    def mode(self):
        """The most probable kept value of each batch element (the smallest, on a tie), in the
        value's shape and dtype."""
        _, _, value_dtype = self._dtypes()
        with torch.no_grad():
            values, log_pmf = self._support_and_log_pmf()
            if log_pmf.numel() == 0:
                return values.new_zeros(self.batch_shape, dtype=value_dtype)
            return values[log_pmf.argmax(-1)].to(value_dtype)

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
            values = torch.arange(first, last + 1, dtype=_parameter_dtype(p), device=_parameter_device(p))
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
            "pyro_redge.Relaxed is deprecated and will be removed; use pyro_redge.ReparameterizedDiscrete "
            "(the same class: its samples are hard, not relaxed)",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Relaxed, _instance))


# The generic mechanism covers every host count distribution (as the exact KL always has); the
# named classes of ``counts`` register later for their own host class, and replace it under
# ``RelaxReparam`` with their own parameters.
register(
    ReparameterizedDiscrete,
    hosts=(
        torch.distributions.Poisson,
        torch.distributions.Binomial,
        torch.distributions.Geometric,
        torch.distributions.NegativeBinomial,
    ),
)
