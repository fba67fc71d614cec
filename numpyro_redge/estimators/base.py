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

    #: Whether :meth:`sample_subset` is defined (k-subsets by top-k); see :class:`~numpyro_redge.KSubset`.
    supports_subsets = False
    #: Whether a call returns one sample per logits row (a distribution needs that).
    one_sample_per_call = True

    def __call__(self, key, logits):
        logits = jnp.asarray(logits)
        return self.apply(logits, *self.sample_noise(key, logits))

    def sample_subset(self, key, logits, k):
        """A hard k-hot sample over the last axis, with the surrogate gradient."""
        logits = jnp.asarray(logits)
        return self.apply_subset(logits, k, *self.subset_noise(key, logits, k))

    def subset_noise(self, key, logits, k):
        """The noise :meth:`apply_subset` consumes."""
        raise ValueError(self._no_subsets())

    def apply_subset(self, logits, k, *noise):
        """The hard k-hot sample for ``logits`` and ``noise``, with the surrogate gradient."""
        raise ValueError(self._no_subsets())

    def _no_subsets(self):
        return (
            f"estimator {type(self).__name__} is not defined for k-subsets: use IMLE, AIMLE or "
            "MarginalStraightThrough"
        )

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


def check_positive_integer(name, value):
    """An integer ``value ≥ 1``, or a ``ValueError`` naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_choice(name, value, choices):
    """One of ``choices``, or a ``ValueError`` naming the argument and the allowed values."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
