"""Count distributions reparameterized by the generalized Gumbel-softmax construction: thin
specialisations of :class:`~pyro_redge.distributions.relaxed.Relaxed` over the host's own."""

import pyro.distributions as host

from pyro_redge.distributions.relaxed import Relaxed
from pyro_redge.estimators import ReDGE


class _HostParameters:
    """The host distribution's parameters, read through (each class has those of its host)."""

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


class Poisson(_HostParameters, Relaxed):
    r"""A Poisson count reparameterized on its support truncated at ``K`` (see :class:`Relaxed`),

    .. math:: p(n) \propto \frac{\lambda^n e^{-\lambda}}{n!}, \qquad n \in \{0, \dots, K\}.

    :param torch.Tensor rate: the rate :math:`\lambda \ge 0`.
    """

    arg_constraints = host.Poisson.arg_constraints

    def __init__(self, rate, estimator=ReDGE(), truncation=None, tail_mass=1e-6, validate_args=None):
        base = host.Poisson(rate, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Poisson, _instance))


class Binomial(_HostParameters, Relaxed):
    r"""A binomial count reparameterized on :math:`\{0, \dots, K\}`, :math:`K \le n` (see :class:`Relaxed`),

    .. math:: p(k) \propto \binom{n}{k} p^k (1 - p)^{n - k}.

    :param total_count: the number of trials :math:`n` (a non-negative integer, or a tensor of them).
    :param probs: the success probability, in [0, 1].
    :param logits: the log-odds of success.
    """

    arg_constraints = host.Binomial.arg_constraints

    def __init__(
        self, total_count=1, probs=None, logits=None, estimator=ReDGE(), truncation=None, tail_mass=1e-6, validate_args=None
    ):
        base = host.Binomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Binomial, _instance))


class Geometric(_HostParameters, Relaxed):
    r"""The number of failures before the first success, reparameterized on :math:`\{0, \dots, K\}`
    (see :class:`Relaxed`),

    .. math:: p(k) \propto (1 - p)^k\, p.

    :param probs: the success probability, in (0, 1].
    :param logits: the log-odds of success.
    """

    arg_constraints = host.Geometric.arg_constraints

    def __init__(self, probs=None, logits=None, estimator=ReDGE(), truncation=None, tail_mass=1e-6, validate_args=None):
        base = host.Geometric(probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(Geometric, _instance))


class NegativeBinomial(_HostParameters, Relaxed):
    r"""The number of successes before ``total_count`` failures, reparameterized on
    :math:`\{0, \dots, K\}` (see :class:`Relaxed`),

    .. math:: p(k) \propto \frac{\Gamma(k + r)}{k!\,\Gamma(r)}\, p^k (1 - p)^r .

    :param total_count: the number of failures :math:`r > 0` (a positive real, as in both hosts).
    :param probs: the success probability, in [0, 1).
    :param logits: the log-odds of success.
    """

    arg_constraints = host.NegativeBinomial.arg_constraints

    def __init__(
        self, total_count, probs=None, logits=None, estimator=ReDGE(), truncation=None, tail_mass=1e-6, validate_args=None
    ):
        base = host.NegativeBinomial(total_count, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, estimator, truncation, tail_mass, validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(NegativeBinomial, _instance))


