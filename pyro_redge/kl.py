"""Exact KL divergences between our distributions and the host's matching discrete ones.

Each distribution class carries its own exact ``kl_divergence``, and its module's ``register`` call
(:mod:`pyro_redge.distributions.registry`) registers it with
:func:`torch.distributions.kl.register_kl` against the class itself and the host classes it
replaces, in both directions; so torch's ``kl_divergence``, re-exported here, and Pyro's
:class:`~pyro.infer.TraceMeanField_ELBO` use them analytically.

**Example**

>>> import torch
>>> import pyro.distributions as dist
>>> from pyro_redge import OneHotCategorical, kl_divergence
>>> p = OneHotCategorical(probs=torch.tensor([0.5, 0.25, 0.25]))
>>> q = dist.Categorical(probs=torch.tensor([0.25, 0.25, 0.5]))
>>> bool(torch.isclose(kl_divergence(p, q), torch.tensor(2.0).log() / 4))
True
"""

from torch.distributions import kl_divergence

import pyro_redge.distributions  # noqa: F401  (importing the distributions registers their KLs)

__all__ = ["kl_divergence"]
