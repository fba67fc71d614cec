"""The estimator protocol shared by every gradient estimator of the PyTorch backend."""

import dataclasses

import torch

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

    **Invalid logits.** Logits need at least one dimension (the categories) and a floating dtype;
    ``-inf`` masks a category (never drawn, exactly zero gradient). A NaN or ``+inf`` logit never
    becomes a plausible sample: under validation (torch's ``Distribution`` validation, which
    ``pyro.enable_validation`` sets; on by default), the functional form ``estimator(logits)``
    checks the values (one reduction and one host synchronisation, as the hosts' own argument
    checks) and raises a ``ValueError`` naming ``logits``; with validation off, and always in
    :meth:`apply` (the hot path with the noise given), nothing synchronises and every row that has
    a NaN or ``+inf`` logit is NaN in the sample. Empty batches (a dimension of size 0) give empty
    samples and gradients.

    **Example**

    >>> import torch
    >>> from pyro_redge import StraightThrough
    >>> estimator = StraightThrough()
    >>> logits = torch.zeros(4, 3)
    >>> noise = estimator.sample_noise(logits)  # from PyTorch's global generator
    >>> torch.equal(estimator.apply(logits, *noise), estimator.apply(logits, *noise))
    True
    """

    #: Whether ``k > 1`` (k-subsets by top-k or exact sampling) is defined; see :class:`~pyro_redge.KSubset`.
    supports_subsets = False
    #: Whether a k-subset draw (``k > 1``) follows the k-subset distribution exactly (otherwise it is
    #: perturb-and-MAP, whose law differs: ``KSubset`` warns).
    exact_subsets = False
    #: Whether a count distribution (:class:`~pyro_redge.Poisson`, ...: a categorical over a window of
    #: counts) may use the estimator; ``False`` for :class:`DisARM`, whose pair estimate the ELBO
    #: forms for Bernoulli and one-hot categorical sites only.
    supports_counts = True
    #: Whether a call returns one sample per logits row (a distribution needs that).
    one_sample_per_call = True
    #: Whether the sample carries a pathwise (surrogate) gradient; ``False`` for the score-function
    #: estimators (:class:`RLOO`, :class:`DisARM`), whose distributions are not reparameterized.
    pathwise = True

    def __call__(self, logits, k=1):
        """A hard sample of ``logits`` (one-hot for ``k = 1``, k-hot otherwise) with the surrogate
        gradient, from fresh noise."""
        check_finite_logits(logits)
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
        if logits.dim() == 0:
            raise ValueError(
                "logits must have at least one dimension (the categories or items are on the last axis), "
                "got a 0-dimensional tensor"
            )
        check_subset_size(type(self).__name__, self.supports_subsets, k, logits.shape[-1])

    @classmethod
    def _no_subsets(cls):
        return no_subsets_message(cls.__name__)

    @staticmethod
    def _noise_dtype(logits):
        return compute_dtype(logits.dtype)


def check_finite_logits(logits):
    """Under validation, a ``ValueError`` naming ``logits`` if a value is NaN or ``+inf`` (``-inf``
    masks a category): one reduction and one host synchronisation. Skipped with validation off (the
    hot path never synchronises) and while ``torch.jit`` traces (a traced graph cannot branch on
    values); :func:`invalid_rows_to_nan` then marks the rows."""
    if (
        not torch.distributions.Distribution._validate_args
        or torch.jit.is_tracing()
        or not (isinstance(logits, torch.Tensor) and logits.is_floating_point())
    ):
        return
    invalid = invalid_rows(logits)
    if bool(invalid.any()):
        raise ValueError(
            f"logits must be real numbers or -inf (a masked category), got NaN or +inf in {int(invalid.sum())} row(s)"
        )


def invalid_rows(logits):
    """Whether each row of ``logits`` holds a NaN or ``+inf``, shape ``(..., 1)``: one pass (the
    row's maximum is NaN or ``+inf`` exactly then) instead of a test per entry."""
    if logits.dim() == 0 or logits.shape[-1] == 0:
        return (logits.isnan() | (logits == torch.inf)).any(-1, keepdim=True)
    return ~(logits.detach().amax(-1, keepdim=True) < torch.inf)


def invalid_rows_to_nan(logits, sample):
    """``sample`` with NaN in every row whose logits hold a NaN or ``+inf`` (no synchronisation):
    such a row must never look like a valid draw."""
    return torch.where(invalid_rows(logits), torch.nan, sample)
