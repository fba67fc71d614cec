"""Count distributions reparameterized by the generalized Gumbel-softmax construction: thin
specialisations of :class:`~pyro_redge.distributions.reparameterized_discrete.ReparameterizedDiscrete`
over the host's own. Each parameter accepts what the host's distribution accepts; ``truncation``,
``tail_mass`` (≥ 1e-12) and ``max_support`` (the largest support built, 10⁶ values by default) are
those of :class:`ReparameterizedDiscrete`, and :meth:`guide` keeps the prior's."""

import math

import pyro.distributions as host
import torch
from torch.distributions import constraints

from pyro_redge.distributions.registry import register
from pyro_redge.distributions.reparameterized_discrete import (
    ReparameterizedDiscrete,
    _compute_dtype,
    _numpy_parameters,
    _parameter_dtype,
)
from pyro_redge.distributions.util import probs_or_logits
from pyro_redge.estimators import DEFAULT_ESTIMATOR
from redge_core import support
from redge_core.support import DEFAULT_MAX_SUPPORT, DEFAULT_TAIL_MASS


class _HostParameters:
    """The host distribution's parameters, read through (each class has those of its host), and
    its SciPy law (``_family``: a name of :data:`redge_core.support.SCIPY_FAMILIES`), whose
    quantiles give the support window."""

    _family = None

    def _scipy_law(self):
        return support.scipy_law(self._family, **_numpy_parameters(self.base))

    @property
    def rate(self):
        return self.base.rate

    @property
    def total_count(self):
        return self.base.total_count

    @property
    def probs(self):
        return self.base.probs

    @property
    def logits(self):
        return self.base.logits


def _poisson_log_prob(base, value):
    """The host's Poisson log-pmf, with a gradient in the rate that is not NaN at ``rate = 0``:
    ``value · log(rate)`` reads the rate only where ``value ≠ 0`` (the host's ``xlogy`` has the
    derivative ``value / rate = 0 / 0`` there). The same floating-point operations as the host's."""
    rate = base.rate
    # Broadcast by the operations, not before them: on a grid of shape (K + 1, 1, ...), the log-gamma
    # is taken once per count rather than once per count and batch element.
    return value.xlogy(torch.where(value == 0, torch.ones_like(rate), rate)) - rate - (value + 1).lgamma()


class Poisson(_HostParameters, ReparameterizedDiscrete):
    r"""A Poisson count reparameterized on its support window :math:`\{L, \dots, K\}`
    (see :class:`ReparameterizedDiscrete`),

    .. math:: p(n) \propto \frac{\lambda^n e^{-\lambda}}{n!}, \qquad n \in \{L, \dots, K\}.

    :param rate: the rate :math:`\lambda \ge 0` (a zero rate puts all the mass on 0).

    **Example**

    >>> import torch
    >>> from pyro_redge import Poisson
    >>> rate = torch.tensor(4.0, requires_grad=True)
    >>> d = Poisson(rate)
    >>> d.support_window()  # both tails below tail_mass = 1e-6
    (0, 17)
    >>> n = d.rsample((3,))
    >>> n.shape, bool((n == n.round()).all()), bool(d.dropped_mass() < 1e-6)
    (torch.Size([3]), True, True)
    >>> n.sum().backward()
    >>> rate.grad.shape
    torch.Size([])
    """

    arg_constraints = host.Poisson.arg_constraints
    _family = "poisson"
    _log_prob_of = staticmethod(_poisson_log_prob)

    def __init__(
        self,
        rate,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Poisson(rate, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args, max_support)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Poisson, _instance))

    # The log-pmf up to a constant per batch element, centred on the window (see
    # redge_core.support.poisson_centring): one multiply-add per value and element.

    def _rate_ratio(self, reference):
        """``log(λ / m)`` in the compute dtype: ``-inf`` at ``λ = 0``, with a gradient that is never
        NaN there (the logarithm only ever sees a positive rate)."""
        rate = self._computing_base().rate
        zero = rate == 0
        safe = torch.where(zero, torch.full_like(rate, reference), rate)
        return torch.where(zero, -torch.inf, torch.log1p((safe - reference) / reference))

    def _support_and_log_pmf(self):
        values = self._support_values()
        first, last = self.support_window()
        reference, table = support.poisson_centring(first, last)
        ratio = self._rate_ratio(reference).unsqueeze(-1)
        centred = torch.tensor(table, dtype=values.dtype, device=values.device)
        log_pmf = torch.addcmul(-centred, ratio, values - first)
        if first == 0:
            log_pmf[..., 0] = 0.0  # 0 · log(0 / m) at rate 0: the value 0 has all the mass
        return values, log_pmf

    def _centred_log_pmf(self, value, ratio):
        """The centred log-pmf (the constant of :meth:`_support_and_log_pmf`) at ``value``, any
        shape broadcasting with ``ratio``: the window's values from the float64 table, others from
        the log-gamma function; ``-inf`` below 0."""
        first, last = self.support_window()
        reference, table = support.poisson_centring(first, last)
        offset = value - first
        inside = (offset >= 0) & (offset <= last - first)
        from_table = torch.tensor(table, dtype=value.dtype, device=value.device)[offset.clamp(0, last - first).long()]
        outside = (value + 1).lgamma() - math.lgamma(first + 1) - offset * math.log(reference)
        linear = torch.where(offset == 0, torch.zeros_like(ratio), offset * ratio)
        centred = linear - torch.where(inside, from_table, outside)
        return torch.where(value >= 0, centred, -torch.inf)

    def _base_log_prob(self, value):
        value = value.to(_compute_dtype(_parameter_dtype(self.base)))
        return self._centred_log_pmf(value, self._rate_ratio(support.poisson_centring(*self.support_window())[0]))

    def _grid_log_pmf(self, values):
        ratio = self._rate_ratio(support.poisson_centring(*self.support_window())[0]).unsqueeze(-1)
        return self._centred_log_pmf(values, ratio)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the rate of a host ``Poisson`` ``fn``."""
        return cls(fn.rate, estimator=estimator, truncation=truncation)

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

    >>> import torch
    >>> from pyro_redge import Binomial
    >>> n = Binomial(10, probs=torch.tensor([0.3, 0.8])).rsample((4,))
    >>> n.shape, bool(((n >= 0) & (n <= 10) & (n == n.round())).all())
    (torch.Size([4, 2]), True)
    """

    arg_constraints = host.Binomial.arg_constraints
    _family = "binomial"

    def __init__(
        self,
        total_count=1,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Binomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args, max_support)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Binomial, _instance))

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``total_count`` and the ``probs`` or ``logits`` (as ``fn`` has it) of a host
        ``Binomial`` ``fn``."""
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

    :param probs: the success probability, in (0, 1].
    :param logits: the log-odds of success.

    **Example**

    >>> import torch
    >>> from pyro_redge import Geometric
    >>> d = Geometric(probs=torch.tensor(0.5))
    >>> d.support_window()  # P(N > 19) = 0.5 ** 20 < 1e-6
    (0, 19)
    >>> d.rsample((3,)).shape
    torch.Size([3])
    """

    arg_constraints = host.Geometric.arg_constraints
    _family = "geometric"

    def __init__(
        self,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.Geometric(probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args, max_support)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Geometric, _instance))

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``probs`` or ``logits`` (as ``fn`` has it) of a host ``Geometric`` ``fn``."""
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


class NegativeBinomial(_HostParameters, ReparameterizedDiscrete):
    r"""The number of successes before ``total_count`` failures, reparameterized on
    :math:`\{L, \dots, K\}` (see :class:`ReparameterizedDiscrete`),

    .. math:: p(k) \propto \frac{\Gamma(k + r)}{k!\,\Gamma(r)}\, p^k (1 - p)^r .

    :param total_count: the number of failures :math:`r`, a real: :math:`r \ge 0` in Pyro (where
        :math:`r = 0` puts all the mass on 0), :math:`r > 0` in NumPyro (each host's own constraint).
    :param probs: the success probability, in [0, 1).
    :param logits: the log-odds of success.

    **Example**

    >>> import torch
    >>> from pyro_redge import NegativeBinomial
    >>> n = NegativeBinomial(total_count=3.0, probs=torch.tensor([0.2, 0.6])).rsample((4,))
    >>> n.shape, bool(((n >= 0) & (n == n.round())).all())
    (torch.Size([4, 2]), True)
    """

    arg_constraints = host.NegativeBinomial.arg_constraints
    _family = "negative_binomial"

    def __init__(
        self,
        total_count,
        probs=None,
        logits=None,
        estimator=DEFAULT_ESTIMATOR,
        truncation=None,
        tail_mass=DEFAULT_TAIL_MASS,
        validate_args=None,
        max_support=DEFAULT_MAX_SUPPORT,
    ):
        base = host.NegativeBinomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args, max_support)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(NegativeBinomial, _instance))

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the ``total_count`` and the ``probs`` or ``logits`` (as ``fn`` has it) of a host
        ``NegativeBinomial`` ``fn``."""
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


register(Poisson, hosts=(torch.distributions.Poisson,))
register(Binomial, hosts=(torch.distributions.Binomial,))
register(Geometric, hosts=(torch.distributions.Geometric,))
register(NegativeBinomial, hosts=(torch.distributions.NegativeBinomial,))
