import copy
import warnings

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from pyro_redge._math import categorical_kl
from pyro_redge.distributions.registry import register
from pyro_redge.distributions.util import check_estimator
from pyro_redge.estimators import ReDGE
from redge_core import support


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


def _parameter_device(distribution):
    for value in distribution.__dict__.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _float64(distribution):
    """A copy whose floating parameters are float64, without gradients: the tail is 1 − CDF,
    resolved to ~1e-13 only if the pmf is float64."""
    copied = copy.copy(distribution)
    for name, value in list(distribution.__dict__.items()):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            setattr(copied, name, value.detach().double())
    return copied


def _find_truncation(distribution, tail_mass, log_prob=_unvalidated_log_prob):
    """``K`` of a host distribution with an integer support, by :func:`redge_core.support.truncation_point`
    on its float64 log-pmf (one host synchronisation: ``K`` is a shape)."""
    lower, upper = support_bounds(distribution.support)
    if isinstance(upper, torch.Tensor):
        upper = int(upper.max().item())
    exact = _float64(distribution)
    device = _parameter_device(distribution)
    try:
        mean, stddev = exact.mean.cpu().numpy(), exact.stddev.cpu().numpy()
    except NotImplementedError:
        mean = stddev = None
    return support.truncation_point(
        lambda values: _log_pmf_on_grid(exact, torch.as_tensor(values, device=device), log_prob).cpu().numpy(),
        lower,
        tail_mass,
        support.truncation_guess(mean, stddev, lower),
        upper,
    )


class ReparameterizedDiscrete(TorchDistribution):
    r"""Reparameterizes any discrete distribution with an integer support (the generalized
    Gumbel-softmax construction): the support is truncated to :math:`\{l, \dots, K\}`, the
    categorical over it is drawn by a gradient estimator as a hard one-hot :math:`D`, and mapped
    linearly to the value,

    .. math:: N = \sum_k D_k\,k, \qquad \log p(N) = \log p_{\text{base}}(N) - \log \sum_{k=l}^{K} p_{\text{base}}(k).

    The value is an integer-valued float (bitwise); its gradient reaches the base's parameters
    through the estimator's surrogate and the base's log-pmf on the grid.

    **Truncation.** With ``truncation=None``, ``K`` is the smallest count whose upper tail mass
    :math:`P(N > K)` is below ``tail_mass`` for every batch element, found from the parameters
    once per instance, at its first use (one host synchronisation: ``K`` is a shape), and kept by
    :meth:`expand`; an integer ``truncation`` fixes ``K``. A distribution is built for given
    parameter values: after changing them in place, build a new one. :meth:`dropped_mass` reports
    the tail that is cut. Samples never exceed ``K``; ``log_prob`` is the base pmf renormalised on
    :math:`\{l, \dots, K\}` (differentiable in the parameters), and for a value above ``K`` (which
    the sampler never draws, but another distribution's sample may be) it continues with the same
    renormalised base pmf instead of returning ``-inf``, so that an ELBO stays finite; the
    difference is bounded by the dropped mass.

    :param base: a host discrete distribution with an integer support and empty event shape.
    :param estimator: a gradient estimator from :mod:`pyro_redge.estimators`; default
        :class:`~pyro_redge.estimators.ReDGE`.
    :param int truncation: the largest value kept, or ``None`` to choose it from ``tail_mass``.
    :param float tail_mass: the largest upper tail mass that may be dropped, in (0, 1).

    **References**

    [1] `Generalized Gumbel-Softmax Gradient Estimator for Generic Discrete Random Variables`,
        Weonyoung Joo, Dongjun Kim, Seungjae Shin, Il-Chul Moon (2020), arXiv:2003.01847
    """

    arg_constraints = {}
    has_rsample = True
    #: ``log_prob(base, value)``: the base's log-pmf, without validation.
    _log_prob_of = staticmethod(_unvalidated_log_prob)

    def __init__(
        self, base, estimator=ReDGE(), truncation=None, tail_mass=support.DEFAULT_TAIL_MASS, validate_args=None
    ):
        if not isinstance(base, torch.distributions.Distribution):
            raise ValueError(f"base must be a torch/Pyro distribution, got {base!r}")
        if base.event_shape != ():
            raise ValueError(f"base must have an empty event shape, got {tuple(base.event_shape)}")
        self._lower, self._upper = support_bounds(base.support)
        self.tail_mass = support.check_tail_mass(tail_mass)
        self.truncation = support.check_truncation(truncation, self._lower)
        self.base = base
        self.estimator = check_estimator(estimator, type(self).__name__)
        self._truncation_point = self.truncation
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.base.support

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ReparameterizedDiscrete, _instance)
        new.base = self.base.expand(batch_shape)
        new.estimator = self.estimator
        new.truncation = self.truncation
        new.tail_mass = self.tail_mass
        new._lower, new._upper = support_bounds(new.base.support)
        # The same parameters, broadcast: the same K, without a second search.
        new._truncation_point = self._truncation_point
        super(ReparameterizedDiscrete, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours over the host distribution ``fn`` (any integer support, empty event shape)."""
        return cls(fn, estimator=estimator, truncation=truncation)

    def _base_log_prob(self, value):
        """The base's log-pmf at ``value``, without validation (the grid leaves the support)."""
        return self._log_prob_of(self.base, value)

    def _grid_log_pmf(self, values):
        """The base log-pmf on ``values`` (1-D, in the dtype to compute in), grid on the last
        axis, ``-inf`` off the support."""
        return _log_pmf_on_grid(self.base, values, self._log_prob_of)

    def log_prob_on_grid(self, values):
        """``log_prob`` of each value of a 1-D grid, grid on the last axis: ``-inf`` off the base's
        support, no validation error (for exact sums over a support, as in the KL)."""
        _, log_pmf = self._support_and_log_pmf()
        return self._grid_log_pmf(values) - torch.logsumexp(log_pmf, dim=-1, keepdim=True)

    def truncation_point(self):
        """``K``, the largest value kept: fixed, or chosen from ``tail_mass`` and the parameters at
        the first call, then kept by the instance."""
        if self._truncation_point is None:
            self._truncation_point = _find_truncation(self.base, self.tail_mass, self._log_prob_of)
        return self._truncation_point

    def _support_values(self):
        """The kept values ``l..K``, in the parameters' dtype and device."""
        return torch.arange(
            self._lower,
            self.truncation_point() + 1,
            dtype=_parameter_dtype(self.base),
            device=_parameter_device(self.base),
        )

    def _support_and_log_pmf(self):
        """The kept values ``l..K`` and the log-pmf on them (batch × grid), unnormalised."""
        values = self._support_values()
        return values, self._grid_log_pmf(values)

    def dropped_mass(self):
        """``P(N > K)`` under the base, per batch element: the mass the truncation cuts
        (computed in float64, returned in the parameters' dtype)."""
        device = _parameter_device(self.base)
        values = torch.arange(self._lower, self.truncation_point() + 1, dtype=torch.float64, device=device)
        log_pmf = _log_pmf_on_grid(_float64(self.base), values, self._log_prob_of)
        tail = support.upper_tail_mass(log_pmf.cpu().numpy())[..., -1]
        return torch.as_tensor(tail, dtype=_parameter_dtype(self.base), device=device)

    def rsample(self, sample_shape=torch.Size()):
        values, log_pmf = self._support_and_log_pmf()
        shape = self._extended_shape(sample_shape) + values.shape
        one_hot = self.estimator(log_pmf.expand(shape))
        return (one_hot * values).sum(-1)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        _, log_pmf = self._support_and_log_pmf()
        return self._base_log_prob(value) - torch.logsumexp(log_pmf, dim=-1)

    def enumerate_support(self, expand=True):
        values = self._support_values()
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))
        if expand:
            values = values.expand((len(values),) + self.batch_shape)
        return values

    @property
    def mean(self):
        values, log_pmf = self._support_and_log_pmf()
        return (torch.softmax(log_pmf, -1) * values).sum(-1)

    @property
    def variance(self):
        values, log_pmf = self._support_and_log_pmf()
        probs = torch.softmax(log_pmf, -1)
        mean = (probs * values).sum(-1, keepdim=True)
        return (probs * (values - mean) ** 2).sum(-1)

    @property
    def mode(self):
        """The most probable kept value of each batch element (the smallest, on a tie), in the
        value's shape and dtype."""
        with torch.no_grad():
            values, log_pmf = self._support_and_log_pmf()
            return values[log_pmf.argmax(-1)]

    @staticmethod
    def kl_divergence(p, q):
        r"""Exact :math:`\mathrm{KL}(p\,\|\,q) = \sum_k p(k) \log(p(k)/q(k))` over the support of
        ``p``, each argument a distribution of ours with an integer support or a host count
        distribution. Ours is truncated, so the sum is exact; a host ``p`` is summed up to where
        its upper tail drops below the default ``tail_mass`` (1e-6), exact to that dropped mass."""
        if isinstance(p, ReparameterizedDiscrete):
            values = p._support_values()
        else:
            lower, _ = support_bounds(p.support)
            K = _find_truncation(p, support.DEFAULT_TAIL_MASS)
            values = torch.arange(lower, K + 1, dtype=_parameter_dtype(p), device=_parameter_device(p))
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
