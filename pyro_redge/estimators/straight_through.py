import dataclasses

import torch

from pyro_redge._math import (
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
    softmax_vjp,
)
from pyro_redge.estimators.base import Estimator, invalid_rows_to_nan


class _StraightThroughFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, uniform):
        probs = torch.softmax(logits.to(compute_dtype(logits.dtype)), dim=-1)
        ctx.save_for_backward(probs)
        ctx.logits_dtype = logits.dtype
        return one_hot(categorical_from_uniform(probs, uniform), logits)

    @staticmethod
    def backward(ctx, grad_sample):
        (probs,) = ctx.saved_tensors
        return softmax_vjp(probs, grad_sample.to(probs.dtype)).to(ctx.logits_dtype), None


@dataclasses.dataclass(frozen=True)
class StraightThrough(Estimator):
    r"""Straight-through estimator: a hard sample :math:`D \sim \mathrm{Cat}(\mathrm{softmax}\,\theta)`
    whose backward pass is the Jacobian of the probabilities,

    .. math:: \frac{\partial D}{\partial \theta} \approx J(\pi) = \mathrm{diag}(\pi) - \pi\pi^\top,
        \qquad \pi = \mathrm{softmax}(\theta).

    Unbiased for functions linear in :math:`D`; biased otherwise. The sample is drawn by inverse
    CDF with one uniform per row (no Gumbel draw per category).

    **Example**

    >>> import torch
    >>> from pyro_redge import StraightThrough
    >>> logits = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    >>> cost = torch.tensor([1.0, 2.0, 3.0])
    >>> sample = StraightThrough()(logits)
    >>> sample.sum().item(), set(sample.tolist()) <= {0.0, 1.0}
    (1.0, True)
    >>> (sample @ cost).backward()
    >>> probs = logits.detach().softmax(-1)
    >>> torch.allclose(logits.grad, probs * (cost - probs @ cost))  # J(pi) cost, whatever the sample
    True

    **References**

    [1] `Estimating or Propagating Gradients Through Stochastic Neurons for Conditional Computation`,
        Yoshua Bengio, Nicholas Léonard, Aaron Courville (2013)
    """

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        return (sample_uniform(logits, self._noise_dtype(logits)),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _StraightThroughFunction.apply(logits, uniform))
