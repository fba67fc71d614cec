import dataclasses

import torch

from pyro_redge._math import compute_dtype, log_elementary_symmetric, subset_from_uniform
from pyro_redge.estimators.base import Estimator, invalid_rows_to_nan
from pyro_redge.estimators.straight_through import StraightThrough


class _MarginalStraightThroughFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, uniform, k):
        logits_c = logits.to(compute_dtype(logits.dtype))
        ctx.save_for_backward(logits_c)
        ctx.k, ctx.logits_dtype = k, logits.dtype
        return subset_from_uniform(logits_c, k, uniform).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_sample):
        (logits_c,) = ctx.saved_tensors
        with torch.enable_grad():
            logits_c = logits_c.detach().requires_grad_()
            (marginals,) = torch.autograd.grad(
                log_elementary_symmetric(logits_c, ctx.k).sum(), logits_c, create_graph=True
            )
            (grad,) = torch.autograd.grad(marginals, logits_c, grad_sample.to(marginals.dtype))
        return grad.to(ctx.logits_dtype), None, None


@dataclasses.dataclass(frozen=True)
class MarginalStraightThrough(Estimator):
    r"""The exact-marginal straight-through estimator (SIMPLE): an exact sample of the k-subset
    distribution :math:`p(z) \propto \exp\langle z, \theta\rangle` forward, and the gradient of the
    exact marginals backward,

    .. math:: \frac{\partial z}{\partial \theta} \approx \frac{\partial \mu}{\partial \theta},
        \qquad \mu = \nabla_\theta \log e_k(e^{\theta}) = \mathbb{E}_p[z].

    For a categorical (``k = 1``) the marginals are :math:`\mathrm{softmax}\,\theta` and this is
    :class:`StraightThrough` exactly (same noise: one uniform per row, inverse-CDF draw); for
    ``k > 1`` the noise is one uniform per item, consumed by the exact sampler of
    :class:`~pyro_redge.KSubset`.

    **Example**

    >>> import torch
    >>> from pyro_redge import MarginalStraightThrough
    >>> logits = torch.zeros(6, requires_grad=True)
    >>> subset = MarginalStraightThrough()(logits, k=3)  # an exact draw
    >>> subset.sum().item()
    3.0
    >>> (subset @ torch.arange(6.0)).backward()
    >>> bool(logits.grad.abs().sum() > 0)
    True

    **References**

    [1] `SIMPLE: A Gradient Estimator for k-Subset Sampling`, Kareem Ahmed, Zhe Zeng,
        Mathias Niepert, Guy Van den Broeck (ICLR 2023)
    """

    supports_subsets = True
    exact_subsets = True

    def sample_noise(self, logits, k=1):
        self._check_k(k, logits)
        if k == 1:
            return StraightThrough().sample_noise(logits)
        return (torch.rand(logits.shape, dtype=compute_dtype(logits.dtype), device=logits.device),)

    def apply(self, logits, uniform, *, k=1):
        self._check_k(k, logits)
        if k == 1:
            return StraightThrough().apply(logits, uniform)
        return invalid_rows_to_nan(logits, _MarginalStraightThroughFunction.apply(logits, uniform, k))
