"""The estimator protocol shared by every gradient estimator of the PyTorch backend."""

import dataclasses

from pyro_redge._math import compute_dtype
from redge_core.estimator_options import check_subset_size, no_subsets_message


@dataclasses.dataclass(frozen=True)
class Estimator:
    r"""A gradient estimator for a discrete variable: an immutable, hashable object that turns
    logits :math:`\theta` (categories or items on the last axis, any batch shape) into a *hard*
    sample whose backward pass is a surrogate Jacobian: a one-hot vector for ``k = 1`` (a
    categorical), a k-hot vector for ``k > 1`` (a k-subset, for the estimators with
    :attr:`supports_subsets`).

    One method family covers both cases:

    - :meth:`sample_noise` ``(logits, k=1)`` draws the noise from PyTorch's global random number
      generator;
    - :meth:`apply` ``(logits, *noise, k=1)`` is deterministic given the noise, which lets the
      tests feed the same noise to this backend, to the JAX one and to the reference packages;
    - ``estimator(logits, k=1)`` is :meth:`apply` of fresh noise.

    An estimator without subsets raises a ``ValueError`` naming ``k`` for ``k != 1``.
    """

    #: Whether ``k > 1`` (k-subsets by top-k or exact sampling) is defined; see :class:`~pyro_redge.KSubset`.
    supports_subsets = False
    #: Whether a call returns one sample per logits row (a distribution needs that).
    one_sample_per_call = True

    def __call__(self, logits, k=1):
        """A hard sample of ``logits`` (one-hot for ``k = 1``, k-hot otherwise) with the surrogate
        gradient, from fresh noise."""
        return self.apply(logits, *self.sample_noise(logits, k=k), k=k)

    def sample_noise(self, logits, k=1):
        """The noise tensors :meth:`apply` consumes for ``logits`` and ``k``, drawn from PyTorch's
        global random number generator."""
        raise NotImplementedError

    def apply(self, logits, *noise, k=1):
        """The hard sample for ``logits`` and ``noise`` (one-hot for ``k = 1``, k-hot otherwise),
        with the surrogate gradient."""
        raise NotImplementedError

    def _check_k(self, k, logits):
        check_subset_size(type(self).__name__, self.supports_subsets, k, logits.shape[-1] if logits.dim() else 0)

    @classmethod
    def _no_subsets(cls):
        return no_subsets_message(cls.__name__)

    @staticmethod
    def _noise_dtype(logits):
        return compute_dtype(logits.dtype)
