import dataclasses

import torch

from pyro_redge._math import (
    categorical_from_uniform,
    compute_dtype,
    one_hot,
    sample_uniform,
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
        tempered = None if not logits_c else torch.softmax(logits_c[0] / ctx.temperature, dim=-1)
        return reinmax_vjp(probs, tempered, index, grad_sample).to(ctx.logits_dtype), None, None


def reinmax_vjp(probs, tempered, index, cotangent):
    r"""ReinMax's :math:`2J(\pi_{1/2})g - \tfrac12 J(\pi_0)g` in closed form. With
    :math:`J(\pi)g = \pi \odot (g - \langle\pi, g\rangle)`, :math:`\pi_{1/2} = \tfrac12(\pi_\tau + e_i)`
    (:math:`e_i` the sample), :math:`s_0 = \langle\pi_0, g\rangle` and
    :math:`s_{1/2} = \tfrac12(\langle\pi_\tau, g\rangle + g_i)`:

    .. math:: \pi_\tau \odot (g - s_{1/2}) - \tfrac12\,\pi_0 \odot (g - s_0) + (g_i - s_{1/2})\,e_i,

    which at :math:`\tau = 1` (``tempered=None``) is :math:`\tfrac12\,\pi_0 \odot (g - g_i) +
    \tfrac12 (g_i - s_0)\,e_i`: a few passes over the classes instead of two softmax products and a
    centring (the reference centres the gradient; this form sums to zero by construction), and
    exactly 0 where :math:`\pi_0 = 0` (masked classes)."""
    picked = cotangent.gather(-1, index)
    mean_under_probs = (probs * cotangent).sum(-1, keepdim=True)
    if tempered is None:
        grad = torch.mul(probs, cotangent - picked).mul_(0.5)
        return grad.scatter_add_(-1, index, 0.5 * (picked - mean_under_probs))
    half = 0.5 * ((tempered * cotangent).sum(-1, keepdim=True) + picked)
    grad = tempered * (cotangent - half) - 0.5 * probs * (cotangent - mean_under_probs)
    return grad.scatter_add_(-1, index, picked - half)


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

    **Example**

    >>> import torch
    >>> from pyro_redge import ReinMax
    >>> logits = torch.zeros(2, 3, requires_grad=True)
    >>> sample = ReinMax()(logits)
    >>> sample.shape, sample.sum(-1).tolist()
    (torch.Size([2, 3]), [1.0, 1.0])
    >>> (sample * torch.tensor([0.0, 1.0, 2.0])).sum().backward()
    >>> logits.grad.shape, bool(logits.grad.abs().sum() > 0)
    (torch.Size([2, 3]), True)

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
