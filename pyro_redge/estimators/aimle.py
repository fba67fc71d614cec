import dataclasses
import typing

import torch

from pyro_redge._math import top_k_one_hot
from pyro_redge.distributed import all_reduce_sum
from pyro_redge.estimators.base import check_finite_logits, invalid_rows_to_nan
from pyro_redge.estimators.imle import PerturbAndMAP, _PerturbAndMAPFunction
from redge_core.estimator_options import check_aimle, python_hyperparameters


class AIMLEState(typing.NamedTuple):
    """AIMLE's adaptive state, kept by the caller (never inside the estimator): ``beta``, the scale
    of the target step, and ``density``, the exponential moving average of the observed gradient
    density (nonzero entries per sample). Two 0-dimensional tensors; made by
    :meth:`AIMLE.init_state`, advanced by :meth:`AIMLE.update_state`."""

    beta: torch.Tensor
    density: torch.Tensor


def logits_scale(logits, group=None):
    """The scale :math:`\\max(\\lVert\theta\rVert, 1)` of AIMLE's step, the norm over the finite logits
    (a masked ``-inf`` logit would make it infinite, and every step zero): identical to the
    reference's :math:`\\lVert\theta\rVert` for finite logits of norm at least 1, and floored at 1
    so that all-zero logits, the usual initialisation, still get a nonzero step. Over the processes
    of ``group`` (see :func:`pyro_redge.distributed.reduce_statistics`) when one is given."""
    return torch.clamp(_norm(torch.where(torch.isfinite(logits), logits, 0.0), group), min=1.0)


def _norm(tensor, group):
    """The Euclidean norm of ``tensor``, over the processes of ``group`` when one is given."""
    if group is None:
        return torch.linalg.vector_norm(tensor)
    return all_reduce_sum(tensor.square().sum(), group).sqrt()


@dataclasses.dataclass(frozen=True)
class AIMLE(PerturbAndMAP):
    r"""Adaptive IMLE: perturb-and-MAP (see :class:`IMLE`) whose target step adapts to the scale of
    the logits and of the incoming gradient :math:`g`,

    .. math:: \lambda = \beta\,\frac{\max(\lVert\theta\rVert, 1)}{\lVert g\rVert}, \qquad
        \nabla_\theta \approx \frac{\mathrm{MAP}(\theta + \lambda g + \tau\varepsilon)
        - \mathrm{MAP}(\theta - \lambda g + \tau\varepsilon)}{2\lambda}

    (the central difference; with ``symmetric=False`` the one-sided IMLE difference), where MAP is
    the argmax (``k = 1``) or the top-k (``k > 1``). The norm runs over the finite logits (masked
    ``-inf`` ones are left out) and is floored at 1, unlike the reference's
    :math:`\lVert\theta\rVert`: at all-zero logits (the usual initialisation) the reference's step
    is 0 and optimisation never moves; for finite logits of norm at least 1 the two agree exactly.
    :math:`\beta` is adapted between steps so that
    the gradient's density :math:`\rho` (nonzero entries per sample) approaches the target
    :math:`\rho^*`: with :math:`\bar\rho` an exponential moving average (``decay`` :math:`\gamma`),

    .. math:: \bar\rho_{t+1} = \gamma\,\bar\rho_t + (1 - \gamma)\,\rho_t, \qquad
        \beta_{t+1} = \max\!\left(0,\ \beta_t + \begin{cases} +s & \bar\rho_{t+1} < \rho^* \\
        -s & \text{otherwise} \end{cases}\right).

    **The state lives outside the estimator.** The estimator is immutable and hashable; the state
    (:class:`AIMLEState`) is made by :meth:`init_state` and advanced by the pure
    :meth:`update_state`, which the caller runs *after* the backward pass, never inside it (an
    extra ``torch.autograd.grad`` changes nothing). ``apply(logits, noise, k=k, beta=beta)`` and
    ``estimator(logits, k=k, beta=beta)`` take :math:`\beta` as an input: a tensor that requires
    grad receives, as its gradient, the density :math:`\rho` observed in the backward pass (a
    report, not a derivative). Without ``beta`` the fixed ``initial_beta`` is used: so does every
    distribution built with this estimator and no ``beta`` (e.g. ``OneHotCategorical``), while
    :class:`~pyro_redge.KSubset` takes ``beta=`` to follow a state.

    **Data parallelism.** The step size couples the samples of a call (two norms over all of
    them), so a process that sees only its share of the minibatch would take a different step.
    Within :func:`pyro_redge.distributed.reduce_statistics` (which
    :class:`~pyro_redge.distributed.DataParallelELBO` and ``fit(..., data_parallel=True)`` enter)
    the norms and the observed density are summed over the data-parallel group: each process's
    backward pass is then its share of the single-process one, and every process gets the same
    density, hence the same state. If one ``beta`` tensor feeds several calls in a step (several
    sites, or particles drawn one by one), its gradient is the *sum* of their densities: divide by
    the number of calls. A hand-written guide keeps the state across steps::

        estimator = AIMLE(target_density=1.0)
        state = estimator.init_state()

        def guide(beta):
            logits = pyro.param("logits", 0.01 * torch.randn(n))
            pyro.sample("z", KSubset(logits, k, estimator, beta=beta))

        svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())   # model(beta) ignores beta
        for _ in range(num_steps):
            beta = state.beta.clone().requires_grad_()   # a leaf whose .grad is the density
            svi.step(beta)
            state = estimator.update_state(state, beta.grad)

    The JAX twin (``numpyro_redge.AIMLE``) has the same methods, state and update.

    :param float target_density: the target number :math:`\rho^* > 0` of nonzero gradient entries
        per sample.
    :param float step: the increment :math:`s > 0` of :math:`\beta`.
    :param bool symmetric: central (``True``) or one-sided (``False``) difference.
    :param float initial_beta: the initial (and, without a state, the fixed) :math:`\beta \ge 0`.
    :param float decay: the EMA decay :math:`\gamma` of the density, in [0, 1).
    :param float temperature: the noise temperature :math:`\tau > 0`.
    :param str noise: ``"gumbel"`` or ``"sum_of_gamma"``.
    :param int samples: the number of noise draws (see :class:`IMLE`).

    **Example**

    >>> import torch
    >>> from pyro_redge import AIMLE
    >>> estimator = AIMLE(target_density=1.0)
    >>> state = estimator.init_state()
    >>> logits = torch.randn(4, 6, requires_grad=True)
    >>> beta = state.beta.clone().requires_grad_()
    >>> subset = estimator(logits, k=2, beta=beta)
    >>> subset.sum(-1).tolist()
    [2.0, 2.0, 2.0, 2.0]
    >>> (subset * torch.arange(6.0)).sum().backward()
    >>> state = estimator.update_state(state, beta.grad)  # after the backward pass
    >>> logits.grad.shape, state.beta.shape
    (torch.Size([4, 6]), torch.Size([]))

    **References**

    [1] `Adaptive Perturbation-Based Gradient Estimation for Discrete Latent Variable Models`,
        Pasquale Minervini, Luca Franceschi, Mathias Niepert (AAAI 2023)
    """

    target_density: float = 1.0
    step: float = 1e-4
    symmetric: bool = True
    initial_beta: float = 1.0
    decay: float = 0.9
    temperature: float = 1.0
    noise: str = "gumbel"
    samples: int = 1

    def __post_init__(self):
        python_hyperparameters(self)
        check_aimle(
            self.target_density,
            self.step,
            self.symmetric,
            self.initial_beta,
            self.decay,
            self.temperature,
            self.noise,
            self.samples,
        )

    def init_state(self, dtype=None, device=None):
        """The initial :class:`AIMLEState`: ``beta = initial_beta``, ``density = target_density``.

        :param torch.dtype dtype: the state's dtype (default: PyTorch's default dtype).
        :param device: the state's device.
        """
        dtype = torch.get_default_dtype() if dtype is None else dtype
        return AIMLEState(
            beta=torch.tensor(float(self.initial_beta), dtype=dtype, device=device),
            density=torch.tensor(float(self.target_density), dtype=dtype, device=device),
        )

    @torch.no_grad()
    def update_state(self, state, observed_density):
        """The state after a step whose backward pass observed ``observed_density`` (the gradient
        of ``beta``, possibly averaged across processes). Pure: ``state`` is not modified.

        :param AIMLEState state: the current state.
        :param observed_density: a scalar tensor or number.
        :rtype: AIMLEState
        """
        observed = torch.as_tensor(observed_density, dtype=state.density.dtype, device=state.density.device)
        density = self.decay * state.density + (1 - self.decay) * observed
        step = torch.full_like(state.beta, self.step)
        beta = torch.clamp(state.beta + torch.where(density < self.target_density, step, -step), min=0.0)
        return AIMLEState(beta=beta, density=density)

    def __call__(self, logits, k=1, beta=None):
        check_finite_logits(logits)
        return self.apply(logits, *self.sample_noise(logits, k=k), k=k, beta=beta)

    def apply(self, logits, noise, *, k=1, beta=None):
        """The hard sample for ``logits`` and ``noise``, with the surrogate gradient.

        :param beta: the scale :math:`\\beta` (a number or a 0-dimensional tensor; default
            ``initial_beta``); if it requires grad, its gradient is the observed density.
        """
        self._check_k(k, logits)
        return invalid_rows_to_nan(logits, _PerturbAndMAPFunction.apply(logits, noise, self._beta(beta), self, k))

    def _beta(self, beta):
        if beta is None:
            return float(self.initial_beta)
        if isinstance(beta, torch.Tensor):
            if beta.dim() != 0:
                raise ValueError(f"beta must be a scalar (0-dimensional tensor), got shape {tuple(beta.shape)}")
            return beta
        if not beta >= 0:
            raise ValueError(f"beta must be a real number >= 0, got {beta!r}")
        return float(beta)

    def _finite_difference(self, logits, noise, beta, sample, grad_sample, k, group=None):
        beta = torch.as_tensor(beta, dtype=logits.dtype, device=logits.device)
        gradient_norm = _norm(grad_sample, group)
        lam = torch.where(gradient_norm > 0, beta * logits_scale(logits, group) / gradient_norm, 0.0)
        perturbed = self.temperature * noise
        minus = top_k_one_hot(logits - lam * grad_sample + perturbed, k)
        if self.symmetric:
            difference = 0.5 * (top_k_one_hot(logits + lam * grad_sample + perturbed, k) - minus)
        else:
            difference = sample - minus
        return difference, torch.where(lam > 0, lam, 1.0)
