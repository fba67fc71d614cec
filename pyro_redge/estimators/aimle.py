import dataclasses

import torch

from pyro_redge._math import top_k_one_hot
from pyro_redge.estimators.base import check_choice, check_positive, check_positive_integer
from pyro_redge.estimators.imle import NOISES, PerturbAndMAP


@dataclasses.dataclass
class AIMLEState:
    """AIMLE's adaptive state, updated in place by each backward pass (tensors on the logits'
    device, so no host synchronisation): ``beta`` and the running (EMA) gradient density, the
    mean number of nonzero entries of one sample's gradient."""

    beta: object
    density: object


@dataclasses.dataclass(frozen=True)
class AIMLE(PerturbAndMAP):
    r"""Adaptive IMLE: perturb-and-MAP (see :class:`IMLE`) whose target step adapts to the scale of
    the logits and of the incoming gradient,

    .. math:: \lambda = \beta\,\frac{\lVert\theta\rVert}{\lVert g\rVert}, \qquad
        \nabla_\theta \approx \frac{\mathrm{MAP}(\theta + \lambda g + \tau\varepsilon)
        - \mathrm{MAP}(\theta - \lambda g + \tau\varepsilon)}{2\lambda}

    (the central difference; with ``symmetric=False`` the one-sided IMLE difference). After each
    backward pass the gradient's density (nonzero entries per sample) enters an exponential moving
    average (``decay`` 0.9); :math:`\beta` is raised by ``step`` while the average is below
    ``target_density`` and lowered by ``step`` (never below 0) while it is above.

    The estimator is immutable and hashable; its mutable :class:`AIMLEState` (``.state``) is held
    by reference, excluded from equality, and updated in place by every backward pass, as in the
    reference implementation. In the JAX twin the state is explicit and threaded by the caller.

    :param float target_density: the target number of nonzero gradient entries per sample.
    :param float step: the increment of :math:`\beta`.
    :param bool symmetric: central (``True``) or one-sided (``False``) difference.
    :param float initial_beta: the initial :math:`\beta \ge 0`.
    :param float decay: the EMA decay of the density, in [0, 1).
    :param float temperature: the noise temperature :math:`\tau > 0`.
    :param str noise: ``"gumbel"`` or ``"sum_of_gamma"``.
    :param int samples: the number of noise draws (see :class:`IMLE`).

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
    state: AIMLEState = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_positive("target_density", self.target_density)
        check_positive("step", self.step)
        check_positive("temperature", self.temperature)
        check_choice("noise", self.noise, NOISES)
        check_choice("symmetric", self.symmetric, (True, False))
        check_positive_integer("samples", self.samples)
        if not (isinstance(self.initial_beta, (int, float)) and self.initial_beta >= 0):
            raise ValueError(f"initial_beta must be a real number >= 0, got {self.initial_beta!r}")
        if not (isinstance(self.decay, (int, float)) and 0 <= self.decay < 1):
            raise ValueError(f"decay must be a real number in [0, 1), got {self.decay!r}")
        if self.state is None:
            object.__setattr__(self, "state", AIMLEState(beta=float(self.initial_beta), density=float(self.target_density)))


    def _finite_difference(self, logits, noise, sample, grad_sample, k):
        beta = torch.as_tensor(self.state.beta, dtype=logits.dtype, device=logits.device)
        gradient_norm = torch.linalg.vector_norm(grad_sample)
        lam = torch.where(gradient_norm > 0, beta * torch.linalg.vector_norm(logits) / gradient_norm, 0.0)
        perturbed = self.temperature * noise
        minus = top_k_one_hot(logits - lam * grad_sample + perturbed, k)
        if self.symmetric:
            difference = 0.5 * (top_k_one_hot(logits + lam * grad_sample + perturbed, k) - minus)
        else:
            difference = sample - minus
        self._update_state(difference, logits.shape[-1])
        return difference, torch.where(lam > 0, lam, 1.0)

    def _update_state(self, difference, num_items):
        """EMA of the nonzero density (per sample) and the β step, as tensor operations."""
        density = (difference != 0).sum() * num_items / difference.numel()
        ema = self.decay * torch.as_tensor(self.state.density, dtype=difference.dtype, device=difference.device)
        ema = ema + (1 - self.decay) * density
        beta = torch.as_tensor(self.state.beta, dtype=difference.dtype, device=difference.device)
        beta = torch.clamp(beta + torch.where(ema < self.target_density, self.step, -self.step), min=0.0)
        self.state.density, self.state.beta = ema.detach(), beta.detach()
