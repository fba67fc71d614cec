import dataclasses

import torch

from pyro_redge._math import compute_dtype, one_hot, sample_gumbel, softmax_vjp
from pyro_redge.estimators.base import Estimator, invalid_rows_to_nan
from redge_core.checks import check_positive
from redge_core.estimator_options import python_hyperparameters


class _GumbelSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, gumbel, temperature):
        perturbed = logits.to(compute_dtype(logits.dtype)) + gumbel
        relaxed = torch.softmax(perturbed / temperature, dim=-1)
        ctx.save_for_backward(relaxed)
        ctx.temperature = temperature
        ctx.logits_dtype = logits.dtype
        return one_hot(perturbed.argmax(-1, keepdim=True), logits)

    @staticmethod
    def backward(ctx, grad_sample):
        (relaxed,) = ctx.saved_tensors
        grad = softmax_vjp(relaxed, grad_sample.to(relaxed.dtype)) / ctx.temperature
        return grad.to(ctx.logits_dtype), None, None


@dataclasses.dataclass(frozen=True)
class GumbelSoftmax(Estimator):
    r"""Straight-through Gumbel-softmax: the hard sample :math:`D = \mathrm{onehot}(\arg\max(\theta + G))`,
    :math:`G` i.i.d. standard Gumbel, whose backward pass is that of the relaxed sample

    .. math:: \frac{\partial D}{\partial \theta} \approx
        \frac{\partial}{\partial \theta}\,\mathrm{softmax}\!\left(\frac{\theta + G}{\tau}\right).

    The hard sample is exactly :math:`\mathrm{Cat}(\mathrm{softmax}\,\theta)`; the gradient is
    biased, less so as :math:`\tau \to 0` at the price of variance.

    :param float temperature: the relaxation temperature :math:`\tau > 0`.

    **Example**

    >>> import torch
    >>> from pyro_redge import GumbelSoftmax
    >>> logits = torch.zeros(4, 3, dtype=torch.float16, requires_grad=True)
    >>> sample = GumbelSoftmax(temperature=0.5)(logits)
    >>> sample.dtype, sample.sum(-1).tolist()
    (torch.float16, [1.0, 1.0, 1.0, 1.0])
    >>> (sample * torch.arange(3.0, dtype=torch.float16)).sum().backward()
    >>> logits.grad.dtype, logits.grad.shape
    (torch.float16, torch.Size([4, 3]))

    **References**

    [1] `Categorical Reparameterization with Gumbel-Softmax`,
        Eric Jang, Shixiang Gu, Ben Poole (ICLR 2017)
    [2] `The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables`,
        Chris J. Maddison, Andriy Mnih, Yee Whye Teh (2017)
    """

    temperature: float = 0.5

    def __post_init__(self):
        python_hyperparameters(self)
        check_positive("temperature", self.temperature)

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        return (sample_gumbel(logits.shape, self._noise_dtype(logits), logits.device),)

    def apply(self, logits, gumbel, *, k=1):
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _GumbelSoftmaxFunction.apply(logits, gumbel, float(self.temperature)))
