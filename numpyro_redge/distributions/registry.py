"""The registry of NumPyro's distributions of ours (see :mod:`redge_core.registry`): each
distribution module ends with ``register(OurClass, hosts=(numpyro.distributions.HostClass, ...))``."""

from numpyro.distributions.kl import kl_divergence

from redge_core.registry import DistributionRegistry

REGISTRY = DistributionRegistry(lambda p, q, function: kl_divergence.register(p, q)(function))
register = REGISTRY.register
