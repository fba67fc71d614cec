"""Exact KL divergences between our distributions and NumPyro's matching discrete ones.

Each distribution class carries its own exact ``kl_divergence``, and its module's ``register``
call (:mod:`numpyro_redge.distributions.registry`) registers it with NumPyro's ``multipledispatch``
:func:`numpyro.distributions.kl.kl_divergence` against the class itself and the host classes it
replaces, in both directions; so that function, re-exported here, and ``TraceMeanField_ELBO``
use them analytically.

**Example**

>>> import jax.numpy as jnp
>>> import numpyro.distributions as dist
>>> from numpyro_redge import OneHotCategorical, kl_divergence
>>> p = OneHotCategorical(probs=jnp.array([0.5, 0.25, 0.25]))
>>> q = dist.Categorical(probs=jnp.array([0.25, 0.25, 0.5]))
>>> bool(jnp.isclose(kl_divergence(p, q), jnp.log(2.0) / 4))
True
"""

from numpyro.distributions.kl import kl_divergence

import numpyro_redge.distributions  # noqa: F401  (importing the distributions registers their KLs)

__all__ = ["kl_divergence"]
