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
from redge_core.checks import check_positive
from redge_core.estimator_options import python_hyperparameters


class _ReinMaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, uniform, temperature):
        logits_c = logits.to(compute_dtype(logits.dtype))
        probs = torch.softmax(logits_c, dim=-1)
        index = categorical_from_uniform(probs, uniform)
        # The hard sample is kept as its index, not as a dense one-hot: a B×1 tensor instead of B×K.
        if temperature == 1.0:
            ctx.save_for_backward(probs, index)
        else:
            ctx.save_for_backward(probs, index, logits_c)
        ctx.temperature = temperature
        ctx.logits_dtype = logits.dtype
        return one_hot(index, logits)

    @staticmethod
    def backward(ctx, grad_sample):
        probs, index, *logits_c = ctx.saved_tensors
        grad_sample = grad_sample.to(probs.dtype)
        tempered = probs if not logits_c else torch.softmax(logits_c[0] / ctx.temperature, dim=-1)
        midpoint = (0.5 * tempered).scatter_add_(-1, index, torch.full_like(index, 0.5, dtype=probs.dtype))
        grad = softmax_vjp(midpoint, 2.0 * grad_sample) - softmax_vjp(probs, 0.5 * grad_sample)
        # The reference centres the gradient; it is already centred up to rounding. Masked classes
        # (probability 0) are left out of the centring, so that their gradient stays exactly 0.
        # One expression for masked and unmasked rows (as in JAX): branching on whether any class is
        # masked would read a value on the host in every backward pass.
        masked = probs == 0
        count = (~masked).sum(-1, keepdim=True).clamp(min=1)
        masked_mean = grad.masked_fill(masked, 0.0).sum(-1, keepdim=True) / count
        centred = torch.where(
            masked.any(-1, keepdim=True),
            (grad - masked_mean).masked_fill(masked, 0.0),
            grad - grad.mean(-1, keepdim=True),
        )
        return centred.to(ctx.logits_dtype), None, None


@dataclasses.dataclass(frozen=True)
class ReinMax(Estimator):
    r"""ReinMax: a hard sample :math:`D \sim \mathrm{Cat}(\pi_0)`, :math:`\pi_0 = \mathrm{softmax}\,\theta`,
    whose backward pass is a second-order (Heun) approximation of the gradient,

    .. math:: \nabla_\theta \approx 2\,J(\pi_{1/2})\,g - \tfrac12\,J(\pi_0)\,g,
        \qquad \pi_{1/2} = \tfrac12\left(\mathrm{softmax}(\theta/\tau) + D\right),

    with :math:`J(\pi) = \mathrm{diag}(\pi) - \pi\pi^\top` and :math:`g` the incoming gradient.
    At :math:`\tau = 1` it is unbiased for functions linear in :math:`D` and exact to second
    order for quadratic ones. Follows the reference package ``reinmax`` 0.1.0.

    :param float temperature: the temperature :math:`\tau > 0` of :math:`\pi_{1/2}`.

    **References**

    [1] `Bridging Discrete and Backpropagation: Straight-Through and Beyond`,
        Liyuan Liu, Chengyu Dong, Xiaodong Liu, Bin Yu, Jianfeng Gao (NeurIPS 2023)
    """

    temperature: float = 1.0

    def __post_init__(self):
        python_hyperparameters(self)
        check_positive("temperature", self.temperature)

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        return (sample_uniform(logits, self._noise_dtype(logits)),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _ReinMaxFunction.apply(logits, uniform, float(self.temperature)))
