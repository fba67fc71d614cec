import dataclasses
import typing

import jax.numpy as jnp

from numpyro_redge._math import top_k_one_hot
from numpyro_redge.estimators.base import check_choice, check_positive, check_positive_integer
from numpyro_redge.estimators.imle import NOISES, PerturbAndMAP, perturb_and_map


class AIMLEState(typing.NamedTuple):
    """AIMLE's adaptive state, a pytree threaded by the caller: ``beta`` and the running (EMA)
    gradient density, the mean number of nonzero entries of one sample's gradient."""

    beta: typing.Any
    density: typing.Any


@dataclasses.dataclass(frozen=True)
class AIMLE(PerturbAndMAP):
    r"""Adaptive IMLE: perturb-and-MAP (see :class:`IMLE`) whose target step adapts to the scale of
    the logits and of the incoming gradient,

    .. math:: \lambda = \beta\,\frac{\lVert\theta\rVert}{\lVert g\rVert}, \qquad
        \nabla_\theta \approx \frac{\mathrm{MAP}(\theta + \lambda g + \tau\varepsilon)
        - \mathrm{MAP}(\theta - \lambda g + \tau\varepsilon)}{2\lambda}

    (the central difference; with ``symmetric=False`` the one-sided IMLE difference).

    **State, made explicit.** A JAX object cannot carry mutable state, so :math:`\beta` is an
    argument: ``apply(logits, noise, beta)`` (``beta=None`` uses ``initial_beta``, which is also
    what a distribution built with this estimator uses: a fixed, non-adaptive :math:`\beta`). The
    gradient with respect to ``beta`` is *not* a derivative: it carries the gradient density
    observed in the backward pass (nonzero entries per sample), the pattern of flax's
    ``perturb``. Thread the state through training with :meth:`init_state` and
    :meth:`update_state`::

        state = estimator.init_state()
        grads, density = jax.grad(loss, argnums=(0, 1))(params, state.beta)
        state = estimator.update_state(state, density)

    :meth:`update_state` enters the density in an exponential moving average (``decay`` 0.9) and
    raises :math:`\beta` by ``step`` while the average is below ``target_density``, lowers it by
    ``step`` (never below 0) while it is above. The PyTorch twin keeps the same state inside the
    estimator and updates it in place.

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

    def init_state(self):
        """The initial :class:`AIMLEState`."""
        return AIMLEState(beta=jnp.asarray(float(self.initial_beta)), density=jnp.asarray(float(self.target_density)))

    def update_state(self, state, observed_density):
        """The state after one backward pass that observed ``observed_density``."""
        density = self.decay * state.density + (1 - self.decay) * observed_density
        beta = jnp.maximum(state.beta + jnp.where(density < self.target_density, self.step, -self.step), 0.0)
        return AIMLEState(beta=beta, density=density)

    def _beta(self, beta):
        return jnp.asarray(float(self.initial_beta) if beta is None else beta)

    def apply(self, logits, noise, beta=None):
        return perturb_and_map(jnp.asarray(logits), noise, self._beta(beta), self, 1)

    def apply_subset(self, logits, k, noise, beta=None):
        return perturb_and_map(jnp.asarray(logits), noise, self._beta(beta), self, k)

    def _finite_difference(self, logits, noise, beta, sample, grad_sample, k):
        gradient_norm = jnp.linalg.norm(grad_sample.ravel())
        safe_norm = jnp.where(gradient_norm > 0, gradient_norm, 1.0)
        lam = jnp.where(gradient_norm > 0, beta * jnp.linalg.norm(logits.ravel()) / safe_norm, 0.0).astype(logits.dtype)
        perturbed = self.temperature * noise
        minus = top_k_one_hot(logits - lam * grad_sample + perturbed, k)
        if self.symmetric:
            difference = 0.5 * (top_k_one_hot(logits + lam * grad_sample + perturbed, k) - minus)
        else:
            difference = sample - minus
        return difference, jnp.where(lam > 0, lam, 1.0)
