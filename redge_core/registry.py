"""The registry of a host's distributions of ours, written once for both hosts.

Each host package keeps one :class:`DistributionRegistry` (``<host>_redge.distributions.registry``)
that :class:`RelaxReparam`, :func:`relax`, :class:`AutoRelaxed` and ``kl_divergence`` all read.
Each distribution module ends with one call, e.g. ``register(Poisson, hosts=(HostPoisson,))``,
and the class itself carries the family's knowledge (see ``CONTRIBUTING.md``):

- ``from_host(fn, estimator, truncation)`` (classmethod): ours, with the parameters of ``fn``, an
  instance of one of ``hosts``;
- ``kl_divergence(p, q)`` (staticmethod): the exact KL, each argument of the class or of its hosts;
- ``guide_parameter()``: the initial value and the constraint of a mean-field guide's learnable
  parameter for a site whose prior is this distribution;
- ``guide(parameter, estimator, truncation)``: the guide's distribution for that parameter;
- ``mode()``: the most probable value (the guide's ``median`` for a discrete site).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Registration:
    """One of our distribution classes, the host classes it replaces, and the host classes it
    only has an exact KL against."""

    distribution: type
    hosts: tuple = ()
    kl_hosts: tuple = ()


class DistributionRegistry:
    """Our distribution classes of one host, the host classes each replaces, and their KLs.

    :param callable register_kl: ``register_kl(p_type, q_type, function)`` registers an exact KL
        with the host's own dispatch (torch's ``register_kl``, NumPyro's ``kl_divergence.register``).
    """

    def __init__(self, register_kl):
        self._register_kl = register_kl
        #: our class -> its :class:`Registration`, in registration order
        self.registrations = {}
        #: host class -> our class that replaces it under ``RelaxReparam``
        self.host_to_ours = {}

    def register(self, distribution, hosts=(), kl_hosts=()):
        """Register ``distribution`` (one of ours) and the host classes it replaces; registers its
        exact ``kl_divergence`` against itself and against each class of ``hosts`` and
        ``kl_hosts``, both directions. A class of ``kl_hosts`` shares the family's KL but is not
        replaced by ``RelaxReparam`` (e.g. a host ``Categorical``, whose integer value cannot carry
        a pathwise gradient). Returns ``distribution``."""
        hosts, kl_hosts = tuple(hosts), tuple(kl_hosts)
        self.registrations[distribution] = Registration(distribution, hosts, kl_hosts)
        kl = distribution.kl_divergence
        self._register_kl(distribution, distribution, kl)
        for host in hosts + kl_hosts:
            self._register_kl(distribution, host, kl)
            self._register_kl(host, distribution, kl)
        for host in hosts:
            self.host_to_ours[host] = distribution
        return distribution

    def is_ours(self, fn):
        """Whether ``fn`` (unwrapped) is an instance of a registered distribution of ours."""
        return isinstance(fn, tuple(self.registrations))

    def ours_for_host(self, fn):
        """The registered class of ours that replaces the host distribution ``fn``, or ``None``
        (the most specific host class wins)."""
        for klass in type(fn).__mro__:
            if klass in self.host_to_ours:
                return self.host_to_ours[klass]
        return None

    def supported_hosts(self):
        """The names of the host classes that have a registered twin, for error messages."""
        return ", ".join(sorted({host.__name__ for host in self.host_to_ours}))
