"""The registry of Pyro's distributions of ours (see :mod:`redge_core.registry`): each
distribution module ends with ``register(OurClass, hosts=(torch.distributions.HostClass, ...))``."""

from torch.distributions import register_kl

from redge_core.registry import DistributionRegistry

REGISTRY = DistributionRegistry(lambda p, q, function: register_kl(p, q)(function))
register = REGISTRY.register
