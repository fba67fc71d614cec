"""The estimator protocol shared by every gradient estimator of the JAX backend."""

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from numpyro_redge._math import compute_dtype


@dataclasses.dataclass(frozen=True)
class Estimator:
    r"""A gradient estimator for a categorical variable: an immutable, hashable object (usable as
    static data of a pytree or a ``jit`` argument) that turns logits :math:`\theta` (categories
    on the last axis, any batch shape) into a *hard* one-hot sample whose backward pass is a
    surrogate Jacobian.

    Calling ``estimator(key, logits)`` draws the noise from the PRNG ``key`` and returns
    :meth:`apply` of it. :meth:`apply` is deterministic given the noise, which lets the tests
    feed the same noise to this backend, to the PyTorch one and to the reference packages.
    """

    def __call__(self, key, logits):
        logits = jnp.asarray(logits)
        return self.apply(logits, *self.sample_noise(key, logits))

    def sample_noise(self, key, logits):
        """The noise arrays :meth:`apply` consumes, drawn from ``key`` for ``logits``."""
        raise NotImplementedError

    def apply(self, logits, *noise):
        """The hard one-hot sample for ``logits`` and ``noise``, with the surrogate gradient."""
        raise NotImplementedError

    @staticmethod
    def _noise_dtype(logits):
        return compute_dtype(jnp.result_type(logits))


def check_positive(name, value):
    """A finite real ``value > 0``, or a ``ValueError`` naming the argument."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")


def zero_cotangent(noise):
    """The cotangent of a noise input: the noise is not differentiated."""
    return jax.tree_util.tree_map(jnp.zeros_like, noise)
