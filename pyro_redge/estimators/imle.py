import dataclasses
import math

import torch

from pyro_redge._math import compute_dtype, sample_gumbel, top_k_one_hot
from pyro_redge.distributed import all_reduce_sum, statistics_group
from pyro_redge.estimators.base import Estimator, invalid_rows_to_nan
from redge_core.estimator_options import SUM_OF_GAMMA_TERMS, check_imle, python_hyperparameters


def sample_perturbation(estimator, logits, k):
    """The perturbation noise ε of perturb-and-MAP (without the temperature), with a leading axis of
    ``samples`` when ``samples > 1``: standard Gumbel, or Sum-of-Gamma
    :math:`\\frac1k\\left(\\sum_{i=1}^{s} \\mathrm{Gamma}(1/k, k/i) - \\log s\\right)`, s = 10."""
    shape = ((estimator.samples,) if estimator.samples > 1 else ()) + tuple(logits.shape)
    dtype = compute_dtype(logits.dtype)
    if estimator.noise == "gumbel":
        return sample_gumbel(shape, dtype, logits.device)
    concentration = torch.full(shape, 1.0 / k, dtype=dtype, device=logits.device)
    total = sum(torch._standard_gamma(concentration) * (k / i) for i in range(1, SUM_OF_GAMMA_TERMS + 1))
    return (total - math.log(SUM_OF_GAMMA_TERMS)) / k


def observed_density(difference, dtype, group=None):
    """The gradient density of one backward pass: the mean number of nonzero entries of one
    sample's finite difference (nonzero entries × items / entries), in ``dtype``, over the
    processes of ``group`` (see :func:`pyro_redge.distributed.reduce_statistics`). Formed from
    exact integers and one division, so that every host and every process get the same number."""
    if group is None:
        return ((difference != 0).sum() * difference.shape[-1]).to(dtype) / difference.numel()
    counts = torch.stack([(difference != 0).sum() * difference.shape[-1], torch.tensor(difference.numel())])
    nonzero, entries = all_reduce_sum(counts.to(difference.device), group)
    return nonzero.to(dtype) / entries.to(dtype)


class _PerturbAndMAPFunction(torch.autograd.Function):
    """Forward ``MAP(θ + τε)``; backward the finite difference of MAPs of the estimator (IMLE's
    one-sided target, or AIMLE's central difference), averaged over the samples. ``beta`` is
    AIMLE's scale (``None`` for IMLE): its gradient is the observed gradient density, a report for
    ``AIMLE.update_state``, not a derivative."""

    @staticmethod
    def forward(ctx, logits, noise, beta, estimator, k):
        logits_c = logits.to(compute_dtype(logits.dtype))
        perturbed = logits_c + estimator.temperature * noise
        sample = top_k_one_hot(perturbed, k)
        if isinstance(beta, torch.Tensor):
            ctx.save_for_backward(logits_c, noise, sample, beta)
        else:
            ctx.save_for_backward(logits_c, noise, sample)
            ctx.beta = beta
        ctx.estimator, ctx.k, ctx.logits_dtype = estimator, k, logits.dtype
        ctx.group = statistics_group()
        return sample.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_sample):
        logits_c, noise, sample, *beta = ctx.saved_tensors
        beta = beta[0] if beta else ctx.beta
        grad_sample = grad_sample.to(logits_c.dtype)
        difference, step = ctx.estimator._finite_difference(
            logits_c, noise, beta, sample, grad_sample, ctx.k, ctx.group
        )
        grad = difference / step
        if noise.dim() > logits_c.dim():
            grad = grad.mean(0)
        grad_beta = None
        if ctx.needs_input_grad[2]:
            grad_beta = observed_density(difference, beta.dtype, ctx.group).reshape(beta.shape)
        return grad.to(ctx.logits_dtype), None, grad_beta, None, None


class PerturbAndMAP(Estimator):
    """What IMLE and AIMLE share: the noise, the MAP forward pass and the sample axis. A subclass
    defines ``_finite_difference`` (the backward pass) and the fields ``temperature``, ``noise``
    and ``samples``."""

    supports_subsets = True

    @property
    def one_sample_per_call(self):
        return self.samples == 1

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        return (sample_perturbation(self, logits, k),)

    def apply(self, logits, noise, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _PerturbAndMAPFunction.apply(logits, noise, None, self, k))


@dataclasses.dataclass(frozen=True)
class IMLE(PerturbAndMAP):
    r"""Implicit maximum-likelihood estimation (perturb-and-MAP): the hard sample is the MAP of the
    perturbed logits, :math:`z = \mathrm{MAP}(\theta + \tau\varepsilon)` (argmax for a
    categorical, top-k for a k-subset), and the backward pass is the finite difference of MAPs
    towards the target distribution :math:`\theta' = \theta - \lambda g`, with the same noise,

    .. math:: \nabla_\theta \approx \frac{1}{\lambda}\left(\mathrm{MAP}(\theta + \tau\varepsilon)
        - \mathrm{MAP}(\theta - \lambda g + \tau\varepsilon)\right).

    With Gumbel noise and a categorical, :math:`z` is an exact draw of
    :math:`\mathrm{Cat}(\mathrm{softmax}(\theta/\tau))`; for k-subsets, perturb-and-MAP samples are
    *not* the exponential family's law (the deviation is measured by the tests).

    :param float temperature: the noise temperature :math:`\tau > 0`.
    :param float lam: the target step :math:`\lambda > 0`.
    :param str noise: ``"gumbel"`` or ``"sum_of_gamma"`` (the Sum-of-Gamma noise of the reference,
        matched to k-subsets).
    :param int samples: the number of noise draws :math:`S \ge 1`; with :math:`S > 1` the output
        has a leading axis of size :math:`S` and the backward pass averages over it.

    **Example**

    >>> import torch
    >>> from pyro_redge import IMLE
    >>> logits = torch.randn(4, 6, requires_grad=True)
    >>> subset = IMLE(temperature=1.0, lam=10.0)(logits, k=2)  # top-2 of the perturbed logits
    >>> subset.shape, subset.sum(-1).tolist()
    (torch.Size([4, 6]), [2.0, 2.0, 2.0, 2.0])
    >>> (subset * torch.arange(6.0)).sum().backward()
    >>> logits.grad.shape
    torch.Size([4, 6])

    **References**

    [1] `Implicit MLE: Backpropagating Through Discrete Exponential Family Distributions`,
        Mathias Niepert, Pasquale Minervini, Luca Franceschi (NeurIPS 2021)
    """

    temperature: float = 1.0
    lam: float = 10.0
    noise: str = "gumbel"
    samples: int = 1

    def __post_init__(self):
        python_hyperparameters(self)
        check_imle(self.temperature, self.lam, self.noise, self.samples)

    def _finite_difference(self, logits, noise, beta, sample, grad_sample, k, group=None):
        target = top_k_one_hot(logits - self.lam * grad_sample + self.temperature * noise, k)
        return sample - target, self.lam
