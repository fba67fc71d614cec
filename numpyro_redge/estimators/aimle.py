import dataclasses
import typing

import jax.numpy as jnp

from numpyro_redge._math import top_k_one_hot
from numpyro_redge.distributed import all_reduce_sum, statistics_group, varying_axes
from numpyro_redge.estimators.base import check_finite_logits, invalid_rows_to_nan
from numpyro_redge.estimators.imle import PerturbAndMAP, perturb_and_map
from redge_core.estimator_options import check_aimle, python_hyperparameters


class AIMLEState(typing.NamedTuple):
    """AIMLE's adaptive state, kept by the caller (never inside the estimator), a pytree: ``beta``,
    the scale of the target step, and ``density``, the exponential moving average of the observed
    gradient density (nonzero entries per sample). Two 0-dimensional arrays; made by
    :meth:`AIMLE.init_state`, advanced by :meth:`AIMLE.update_state`."""

    beta: typing.Any
    density: typing.Any


def logits_scale(logits, group=None):
    """The scale :math:`\\max(\\lVert\theta\rVert, 1)` of AIMLE's step, the norm over the finite logits
    (a masked ``-inf`` logit would make it infinite, and every step zero): identical to the
    reference's :math:`\\lVert\theta\rVert` for finite logits of norm at least 1, and floored at 1
    so that all-zero logits, the usual initialisation, still get a nonzero step. Over the mapped
    axis ``group`` (see :func:`numpyro_redge.distributed.reduce_statistics`) when one is given."""
    return jnp.maximum(_norm(jnp.where(jnp.isfinite(logits), logits, 0.0), group), 1.0)


def _norm(array, group):
    """The Euclidean norm of ``array``, over the mapped axis ``group`` when one is given."""
    if group is None:
        return jnp.linalg.norm(array.ravel())
    return jnp.sqrt(all_reduce_sum(jnp.sum(jnp.square(array)), group))


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

    **The state lives outside the estimator.** The estimator is immutable and hashable (static
    under ``jit``); the state (:class:`AIMLEState`, a pytree) is made by :meth:`init_state` and
    advanced by the pure :meth:`update_state`, which the caller runs *after* the backward pass.
    ``apply(logits, noise, k=k, beta=beta)`` and ``estimator(key, logits, k=k, beta=beta)`` take
    :math:`\beta` as an input whose cotangent is the density :math:`\rho` observed in the backward
    pass (a report, not a derivative; the pattern of flax's ``perturb``). Without ``beta`` the
    fixed ``initial_beta`` is used: so does every distribution built with this estimator and no
    ``beta`` (e.g. ``OneHotCategorical``), while :class:`~numpyro_redge.KSubset` takes ``beta=``
    (a pytree data field) to follow a state.

    **Data parallelism.** The step size couples the samples of a call (two norms over all of
    them). Under ``jit`` over arrays sharded across devices (``fit(..., data_parallel=True)``,
    :mod:`numpyro_redge.distributed`) these reductions are global, so the step equals the
    single-device one; under ``shard_map`` or ``pmap``, apply the estimator within
    :func:`numpyro_redge.distributed.reduce_statistics` with the mapped axis' name, which sums the
    norms and the observed density over it (every device then gets the same density, hence the
    same state). If one ``beta`` feeds several calls in a step (several sites, or particles drawn
    one by one), its cotangent is the *sum* of their densities: divide by the number of calls. A
    hand-written guide keeps the state across steps::

        estimator = AIMLE(target_density=1.0)
        state = estimator.init_state()

        def guide(beta):
            logits = numpyro.param("logits", 0.01 * jax.random.normal(key, (n,)))
            numpyro.sample("z", KSubset(logits, k, estimator, beta=beta))

        @jax.jit
        def step(params, opt_state, state, key):
            loss = lambda p, beta: Trace_ELBO().loss(key, p, model, guide, beta)  # model ignores beta
            grads, density = jax.grad(loss, argnums=(0, 1))(params, state.beta)
            updates, opt_state = optimizer.update(grads, opt_state)
            return optax.apply_updates(params, updates), opt_state, estimator.update_state(state, density)

    The PyTorch twin (``pyro_redge.AIMLE``) has the same methods, state and update.

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

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import AIMLE
    >>> estimator = AIMLE(target_density=1.0)
    >>> state = estimator.init_state()
    >>> key = jax.random.PRNGKey(0)
    >>> logits = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    >>> estimator(key, logits, k=2, beta=state.beta).sum(-1).tolist()
    [2.0, 2.0, 2.0, 2.0]
    >>> def cost(logits, beta):
    ...     return (estimator(key, logits, k=2, beta=beta) * jnp.arange(6.0)).sum()
    >>> grad, density = jax.grad(cost, argnums=(0, 1))(logits, state.beta)
    >>> state = estimator.update_state(state, density)  # after the backward pass
    >>> grad.shape, jnp.shape(state.beta)
    ((4, 6), ())

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

    def init_state(self, dtype=None):
        """The initial :class:`AIMLEState`: ``beta = initial_beta``, ``density = target_density``.

        :param dtype: the state's dtype (default: JAX's default float, float64 under x64).
        """
        dtype = jnp.result_type(float) if dtype is None else dtype
        return AIMLEState(
            beta=jnp.asarray(float(self.initial_beta), dtype=dtype),
            density=jnp.asarray(float(self.target_density), dtype=dtype),
        )

    def update_state(self, state, observed_density):
        """The state after a step whose backward pass observed ``observed_density`` (the cotangent
        of ``beta``, possibly averaged across devices). Pure and ``jit``-safe.

        :param AIMLEState state: the current state.
        :param observed_density: a scalar array or number.
        :rtype: AIMLEState
        """
        observed = jnp.asarray(observed_density, dtype=jnp.result_type(state.density))
        density = self.decay * state.density + (1 - self.decay) * observed
        beta = jnp.maximum(state.beta + jnp.where(density < self.target_density, self.step, -self.step), 0.0)
        return AIMLEState(beta=beta, density=density)

    def __call__(self, key, logits, k=1, beta=None):
        logits = jnp.asarray(logits)
        check_finite_logits(logits)
        return self.apply(logits, *self.sample_noise(key, logits, k=k), k=k, beta=beta)

    def apply(self, logits, noise, *, k=1, beta=None):
        """The hard sample for ``logits`` and ``noise``, with the surrogate gradient.

        :param beta: the scale :math:`\\beta` (a number or a 0-dimensional array; default
            ``initial_beta``); its cotangent is the observed density.
        """
        self._check_k(k, logits)
        group = statistics_group()
        if group is None and varying_axes(logits):
            raise ValueError(
                f"AIMLE's step size couples the samples of a call, but these logits are split over the mapped axes "
                f"{sorted(varying_axes(logits))} of shard_map: apply the estimator within "
                "numpyro_redge.distributed.reduce_statistics(axis_name), which sums its statistics over the axis"
            )
        return invalid_rows_to_nan(
            logits, perturb_and_map(jnp.asarray(logits), noise, self._beta(beta), self, k, group)
        )

    def _beta(self, beta):
        if beta is None:
            return jnp.asarray(float(self.initial_beta))
        if jnp.ndim(beta) != 0:
            raise ValueError(f"beta must be a scalar (0-dimensional array), got shape {jnp.shape(beta)}")
        if isinstance(beta, (int, float)) and not beta >= 0:
            raise ValueError(f"beta must be a real number >= 0, got {beta!r}")
        return jnp.asarray(beta)

    def _finite_difference(self, logits, noise, beta, sample, grad_sample, k, group=None):
        gradient_norm = _norm(grad_sample, group)
        safe_norm = jnp.where(gradient_norm > 0, gradient_norm, 1.0)
        lam = jnp.where(gradient_norm > 0, beta * logits_scale(logits, group) / safe_norm, 0.0).astype(logits.dtype)
        perturbed = self.temperature * noise
        minus = top_k_one_hot(logits - lam * grad_sample + perturbed, k)
        if self.symmetric:
            difference = 0.5 * (top_k_one_hot(logits + lam * grad_sample + perturbed, k) - minus)
        else:
            difference = sample - minus
        return difference, jnp.where(lam > 0, lam, 1.0)
