import copy
import math
import numbers

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from pyro_redge._math import truncation_point, upper_tail_mass
from pyro_redge.distributions.util import check_estimator
from pyro_redge.estimators import ReDGE


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


class Relaxed(TorchDistribution):
    r"""Reparameterizes any discrete distribution with an integer support (the generalized
    Gumbel-softmax construction): the support is truncated to :math:`\{l, \dots, K\}`, the
    categorical over it is drawn by a gradient estimator as a hard one-hot :math:`D`, and mapped
    linearly to the value,

    .. math:: N = \sum_k D_k\,k, \qquad \log p(N) = \log p_{\text{base}}(N) - \log \sum_{k=l}^{K} p_{\text{base}}(k).

    The value is an integer-valued float (bitwise); its gradient reaches the base's parameters
    through the estimator's surrogate and the base's log-pmf on the grid.

    **Truncation.** With ``truncation=None``, ``K`` is the smallest count whose upper tail mass
    :math:`P(N > K)` is below ``tail_mass`` for every batch element, recomputed from the current
    parameters at every call (one host synchronisation: ``K`` is a shape); an integer
    ``truncation`` fixes ``K``. :meth:`dropped_mass` reports the tail that is cut. Samples never
    exceed ``K``; ``log_prob`` is the base pmf renormalised on :math:`\{l, \dots, K\}`, and for
    a value above ``K`` (which the sampler never draws, but another distribution's sample may be)
    it continues with the same renormalised base pmf instead of returning ``-inf``, so that an
    ELBO stays finite; the difference is bounded by the dropped mass.

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

    def __init__(self, base, estimator=ReDGE(), truncation=None, tail_mass=1e-6, validate_args=None):
        if not isinstance(base, torch.distributions.Distribution):
            raise ValueError(f"base must be a torch/Pyro distribution, got {base!r}")
        if base.event_shape != ():
            raise ValueError(f"base must have an empty event shape, got {tuple(base.event_shape)}")
        self._lower, self._upper = support_bounds(base.support)
        if isinstance(tail_mass, bool) or not isinstance(tail_mass, numbers.Real) or not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be a real number in the open interval (0, 1), got {tail_mass!r}")
        if truncation is not None and (
            isinstance(truncation, bool) or not isinstance(truncation, numbers.Integral) or truncation < self._lower
        ):
            raise ValueError(
                f"truncation must be None or an integer >= {self._lower} (the support's lower bound), got {truncation!r}"
            )
        self.base = base
        self.estimator = check_estimator(estimator, type(self).__name__)
        self.truncation = None if truncation is None else int(truncation)
        self.tail_mass = float(tail_mass)
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.base.support

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Relaxed, _instance)
        new.base = self.base.expand(batch_shape)
        new.estimator = self.estimator
        new.truncation = self.truncation
        new.tail_mass = self.tail_mass
        new._lower, new._upper = support_bounds(new.base.support)
        super(Relaxed, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _base_log_prob(self, value):
        """The base's log-pmf at ``value``, without validation (the grid leaves the support)."""
        unvalidated = copy.copy(self.base)
        unvalidated._validate_args = False
        return unvalidated.log_prob(value)

    def _grid_log_pmf(self, values):
        """The base log-pmf on ``values`` (1-D, in the dtype to compute in), grid on the last
        axis, ``-inf`` off the support."""
        grid = values.reshape((-1,) + (1,) * len(self.batch_shape))
        log_pmf = torch.where(self.base.support.check(grid), self._base_log_prob(grid), -torch.inf)
        return log_pmf.expand((len(values),) + self.batch_shape).movedim(0, -1)

    def log_prob_on_grid(self, values):
        """``log_prob`` of each value of a 1-D grid, grid on the last axis: ``-inf`` off the base's
        support, no validation error (for exact sums over a support, as in the KL)."""
        _, log_pmf = self._support_and_log_pmf()
        return self._grid_log_pmf(values) - torch.logsumexp(log_pmf, dim=-1, keepdim=True)

    def _parameter_dtype(self):
        for name in ("rate", "probs", "logits", "total_count"):
            value = self.base.__dict__.get(name)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.dtype
        return torch.get_default_dtype()

    def _parameter_device(self):
        for value in self.base.__dict__.values():
            if isinstance(value, torch.Tensor):
                return value.device
        return torch.device("cpu")

    def _truncation_guess(self):
        try:
            mean, std = self.base.mean, self.base.stddev
        except NotImplementedError:
            return self._lower + 64
        return math.ceil(float((mean + 8 * std).max().item())) + 10

    def _float64(self):
        """A copy whose base holds its floating parameters in float64, without gradients: the
        tail is 1 − CDF, resolved to ~1e-13 only if the pmf is float64."""
        copied = copy.copy(self)
        copied.base = copy.copy(self.base)
        for name, value in list(self.base.__dict__.items()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                setattr(copied.base, name, value.detach().double())
        return copied

    def truncation_point(self):
        """``K``, the largest value kept (fixed, or chosen from ``tail_mass`` and the parameters)."""
        if self.truncation is not None:
            return self.truncation
        upper = self._upper
        if isinstance(upper, torch.Tensor):
            upper = int(upper.max().item())
        exact = self._float64()
        device = self._parameter_device()
        return truncation_point(
            lambda values: exact._grid_log_pmf(values.to(device)),
            self._lower,
            self.tail_mass,
            exact._truncation_guess(),
            upper,
        )

    def _support_and_log_pmf(self):
        """The kept values ``l..K`` and the log-pmf on them (batch × grid), unnormalised."""
        values = torch.arange(
            self._lower, self.truncation_point() + 1, dtype=self._parameter_dtype(), device=self._parameter_device()
        )
        return values, self._grid_log_pmf(values)

    def dropped_mass(self):
        """``P(N > K)`` under the base, per batch element: the mass the truncation cuts
        (computed in float64, returned in the parameters' dtype)."""
        values = torch.arange(self._lower, self.truncation_point() + 1, dtype=torch.float64)
        log_pmf = self._float64()._grid_log_pmf(values.to(self._parameter_device()))
        return upper_tail_mass(log_pmf)[..., -1].to(self._parameter_dtype())

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
        values, _ = self._support_and_log_pmf()
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
