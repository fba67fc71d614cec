"""The gradient estimators' hyperparameters, shared by both hosts: the allowed values and the checks
each estimator runs at construction (a ``ValueError`` naming the argument), and the check of the
subset size ``k`` every estimator runs on a call."""

import dataclasses
import math
import numbers

import numpy as np

from redge_core.checks import check_choice, check_positive, check_positive_integer

#: The estimator every distribution, reparam and autoguide uses when none is given (``KSubset``
#: excepted: its default draws exactly), by class name and keyword arguments, the same in both
#: hosts. ReinMax, on the project's own measurements (the test suite's "measured" section, quoted
#: in the documentation's "Choosing an estimator"): the least biased gradient of all estimators
#: against enumeration (a bias of norm 0.003 to 0.006 for a gradient of norm 1.49 on a quadratic
#: loss, K = 6; ReDGE 0.34, Gumbel-softmax 0.23, straight-through 0.47), exact hard samples, and
#: the closest SVI fit on the Gaussian mixture.
DEFAULT_ESTIMATOR = ("ReinMax", {})

#: The perturbation noises of IMLE and AIMLE.
NOISES = ("gumbel", "sum_of_gamma")
#: The number of terms of the Sum-of-Gamma noise, as in the reference implementation.
SUM_OF_GAMMA_TERMS = 10
#: ReDGE's variants: the reference package's ``redge``, ``redge_cov`` and ``reindge``.
REDGE_VARIANTS = ("mean", "cov", "rein")
#: The floor of the per-category variance in ReDGE's ``cov`` variant, as in the reference package.
COV_MIN_VARIANCE = 0.1
#: The estimators defined for k-subsets (k > 1), for error messages.
SUBSET_ESTIMATORS = ("IMLE", "AIMLE", "MarginalStraightThrough")


def python_hyperparameters(estimator):
    """Replace, in place, each NumPy scalar field of the frozen dataclass ``estimator`` by the Python
    scalar of the same value (``np.int64(5)`` by ``5``), so that equality and hashing (estimators are
    static under ``jit``) do not depend on how a number was spelled; an array or tensor is a
    ``ValueError`` naming the field: hyperparameters are static numbers, not traced values."""
    for field in dataclasses.fields(estimator):
        value = getattr(estimator, field.name)
        if isinstance(value, np.generic):
            object.__setattr__(estimator, field.name, value.item())
        elif hasattr(value, "shape") or hasattr(value, "__array__"):
            raise ValueError(
                f"{field.name} must be a Python or NumPy real number, got a tensor "
                f"({type(value).__module__}.{type(value).__name__}): hyperparameters are static; "
                "use float(...) or .item() if the value is concrete"
            )


def check_redge(num_steps, t1, variant):
    """ReDGE's ``num_steps`` (an integer ≥ 2), ``t1`` (in the open interval (0, 1)) and
    ``variant`` (one of :data:`REDGE_VARIANTS`)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}")
    if isinstance(t1, bool) or not isinstance(t1, (int, float)) or not 0 < t1 < 1:
        raise ValueError(f"t1 must be a real number in the open interval (0, 1), got {t1!r}")
    check_choice("variant", variant, REDGE_VARIANTS)


def check_exact_redge(num_steps, t1, variant, num_chains):
    """ExactReDGE's hyperparameters: ReDGE's (:func:`check_redge`) and the number of chains
    ``num_chains``, an integer ≥ 1, and ≥ 2 for the ``rein`` variant (its correction needs chains
    coupled to the sample: with one chain, independent of it, its bias grew tenfold)."""
    check_redge(num_steps, t1, variant)
    check_positive_integer("num_chains", num_chains)
    if variant == "rein" and num_chains < 2:
        raise ValueError(
            f"num_chains must be an integer >= 2 with variant='rein' (one chain is independent of the exact "
            f"sample, and the rein correction then biases the gradient), got {num_chains!r}"
        )


def check_perturbation(temperature, noise, samples):
    """What IMLE and AIMLE share: the noise ``temperature`` (> 0), the ``noise`` (one of
    :data:`NOISES`) and the number of noise draws ``samples`` (an integer ≥ 1)."""
    check_positive("temperature", temperature)
    check_choice("noise", noise, NOISES)
    check_positive_integer("samples", samples)


def check_imle(temperature, lam, noise, samples):
    """IMLE's hyperparameters: see :func:`check_perturbation`; the target step ``lam`` > 0."""
    check_perturbation(temperature, noise, samples)
    check_positive("lam", lam)


def check_aimle(target_density, step, symmetric, initial_beta, decay, temperature, noise, samples):
    """AIMLE's hyperparameters: ``target_density`` and ``step`` > 0, ``symmetric`` a bool,
    ``initial_beta`` ≥ 0 and finite, ``decay`` in [0, 1), and those of :func:`check_perturbation`."""
    check_positive("target_density", target_density)
    check_positive("step", step)
    check_perturbation(temperature, noise, samples)
    check_choice("symmetric", symmetric, (True, False))
    if (
        isinstance(initial_beta, bool)
        or not isinstance(initial_beta, numbers.Real)
        or not math.isfinite(initial_beta)
        or initial_beta < 0
    ):
        raise ValueError(f"initial_beta must be a finite real number >= 0, got {initial_beta!r}")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
        raise ValueError(f"decay must be a real number in [0, 1), got {decay!r}")


def no_subsets_message(estimator_name):
    """Why an estimator defined for categoricals only cannot draw a k-subset."""
    return (
        f"estimator {estimator_name} is not defined for k-subsets (k > 1): use "
        f"{', '.join(SUBSET_ESTIMATORS[:-1])} or {SUBSET_ESTIMATORS[-1]}"
    )


def check_subset_size(estimator_name, supports_subsets, k, n):
    """The subset size ``k`` of a call: exactly 1 (a categorical) for an estimator without subsets,
    an integer in [1, n] for one with subsets; otherwise a ``ValueError`` naming ``k``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k == 1:
        return
    if not supports_subsets:
        raise ValueError(f"k = {k}: {no_subsets_message(estimator_name)}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, n] = [1, {n}], got {k!r}")


def check_count_estimator(estimator, distribution_name):
    """A ``ValueError`` unless the estimator may draw a count site (``supports_counts``): DisARM's pair
    estimate is formed for Bernoulli and one-hot categorical sites only."""
    if not estimator.supports_counts:
        raise ValueError(
            f"estimator of {distribution_name} must support count sites: {type(estimator).__name__} is "
            "defined for Bernoulli and OneHotCategorical sites; use RLOO for a count site"
        )
    return estimator


def check_num_particles(num_particles, elbo_name):
    """The particle count of a leave-one-out ELBO: an integer ≥ 2 (a baseline needs another particle)."""
    if isinstance(num_particles, bool) or not isinstance(num_particles, numbers.Integral) or num_particles < 2:
        raise ValueError(
            f"num_particles of {elbo_name} must be an integer >= 2 (each particle's baseline is the mean "
            f"of the others'), got {num_particles!r}"
        )


def check_antithetic_particles(num_particles, batch_shape=None):
    """DisARM pairs particle ``i`` with ``i + num_particles / 2``: an even ``num_particles`` and, when
    the particles are a batch axis (Pyro's vectorized particles; ``batch_shape`` given), a batch
    whose leftmost axis has that size, or a ``ValueError``."""
    if num_particles % 2:
        raise ValueError(
            f"DisARM draws the particles in antithetic pairs: num_particles of ScoreFunction_ELBO must be "
            f"even, got {num_particles}"
        )
    if batch_shape is not None and (not batch_shape or batch_shape[0] != num_particles):
        raise ValueError(
            f"a DisARM site expects the {num_particles} particles on the leftmost batch axis, got batch shape "
            f"{batch_shape}: give ScoreFunction_ELBO the model's max_plate_nesting, and keep the site's "
            "batch dimensions inside plates"
        )
