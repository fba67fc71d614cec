"""The estimator protocol shared by every gradient estimator of the PyTorch backend."""

import dataclasses
import math
import numbers

from pyro_redge._math import compute_dtype


@dataclasses.dataclass(frozen=True)
class Estimator:
    r"""A gradient estimator for a categorical variable: an immutable, hashable object that turns
    logits :math:`\theta` (categories on the last axis, any batch shape) into a *hard* one-hot
    sample whose backward pass is a surrogate Jacobian.

    Calling ``estimator(logits)`` draws the noise from PyTorch's global random number generator
    and returns :meth:`apply` of it. :meth:`apply` is deterministic given the noise, which lets the
    tests feed the same noise to this backend, to the JAX one and to the reference packages.
    """

    #: Whether :meth:`sample_subset` is defined (k-subsets by top-k); see :class:`~pyro_redge.KSubset`.
    supports_subsets = False
    #: Whether a call returns one sample per logits row (a distribution needs that).
    one_sample_per_call = True

    def __call__(self, logits):
        return self.apply(logits, *self.sample_noise(logits))

    def sample_subset(self, logits, k):
        """A hard k-hot sample over the last axis, with the surrogate gradient."""
        return self.apply_subset(logits, k, *self.subset_noise(logits, k))

    def subset_noise(self, logits, k):
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

    def sample_noise(self, logits):
        """The noise tensors :meth:`apply` consumes, drawn for ``logits``."""
        raise NotImplementedError

    def apply(self, logits, *noise):
        """The hard one-hot sample for ``logits`` and ``noise``, with the surrogate gradient."""
        raise NotImplementedError

    @staticmethod
    def _noise_dtype(logits):
        return compute_dtype(logits.dtype)


def check_positive(name, value):
    """A finite real ``value > 0``, or a ``ValueError`` naming the argument."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")


def check_positive_integer(name, value):
    """An integer ``value ≥ 1``, or a ``ValueError`` naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_choice(name, value, choices):
    """One of ``choices``, or a ``ValueError`` naming the argument and the allowed values."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
