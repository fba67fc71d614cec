import copy

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import lazy_property
from numpyro.util import not_jax_tracer

from numpyro_redge.estimators import Estimator


def check_estimator(estimator, distribution_name):
    """The estimator, or a ``ValueError`` naming the argument and what is allowed."""
    if not isinstance(estimator, Estimator):
        raise ValueError(
            f"estimator of {distribution_name} must be an instance of "
            f"numpyro_redge.estimators.Estimator (StraightThrough, GumbelSoftmax, GumbelRao, ReinMax, ReDGE, "
            "IMLE, AIMLE, MarginalStraightThrough, RLOO, DisARM), "
            f"got {estimator!r}"
        )
    if not estimator.one_sample_per_call:
        raise ValueError(
            f"estimator of {distribution_name} must return one sample per call, but "
            f"{estimator!r} returns a leading axis of samples: use samples=1 in a distribution "
            "(or the estimator's functional form)"
        )
    return estimator


@property
def estimator_is_pathwise(distribution):
    """``has_rsample`` of our distributions: ``True`` for a pathwise estimator, ``False`` for a
    score-function one (:class:`~numpyro_redge.estimators.RLOO`, :class:`~numpyro_redge.estimators.DisARM`),
    whose gradient the ELBO forms from the score (NumPyro's ``rsample`` then raises, and its ELBOs
    read ``has_rsample``)."""
    return distribution.estimator.pathwise


def estimator_support(distribution, constraint):
    """``constraint`` (not ``is_discrete``: the site has a pathwise gradient), or, for a
    score-function estimator, a copy that is ``is_discrete``: NumPyro's SVI then warns that an ELBO
    without score terms (``Trace_ELBO``) cannot fit the site, which is true."""
    if distribution.estimator.pathwise:
        return constraint
    discrete = copy.copy(constraint)
    discrete.is_discrete = True
    return discrete


def check_value(distribution, value):
    """Under validation, a concrete ``value`` outside the support is a ``ValueError`` (NumPyro only
    warns); a traced value cannot be checked here: the support mask is returned (``True`` without
    validation), for :func:`mask_outside_support` to apply."""
    if not distribution._validate_args:
        return True
    inside = distribution.support(value)
    if not_jax_tracer(inside) and not np.all(inside):
        raise ValueError(
            f"value must be in the support {distribution.support} of {type(distribution).__name__}, got {value!r}"
        )
    return inside


def mask_outside_support(inside, log_prob):
    """``log_prob`` with ``-inf`` where a value was outside the support, as NumPyro's own
    ``validate_sample`` does under ``jit`` (where the value cannot be checked eagerly); the values
    inside the support are returned unchanged."""
    if inside is True:
        return log_prob
    return jnp.where(inside, log_prob, -jnp.inf)


def validation_enabled(validate_args):
    """Whether a distribution built with ``validate_args`` validates (NumPyro's global default otherwise)."""
    if validate_args is not None:
        return bool(validate_args)
    return bool(Distribution._validate_args)


def check_parameters(distribution_name, validate_args, parameters):
    """Under validation, each concrete parameter of ``parameters`` (``{name: (value, constraint,
    requirement)}``) must satisfy its constraint, or a ``ValueError`` names it and says what is
    required.

    The check runs on the concrete value even inside ``jax.jit`` (where NumPyro's own validation
    sees only tracers and does nothing): a NumPy or Python constant is known while tracing. A
    traced parameter cannot be checked and is let through.
    """
    if not validation_enabled(validate_args):
        return
    for name, (value, constraint, requirement) in parameters.items():
        if value is None or isinstance(value, jax.core.Tracer):
            continue
        with jax.ensure_compile_time_eval():
            valid = constraint(jnp.asarray(value))
            valid = np.all(valid) if not_jax_tracer(valid) else True
        if not valid:
            raise ValueError(f"{name} must {requirement} ({distribution_name}); got {value!r}")


def simplex_tolerance(dtype):
    """How far from one the sum of probabilities stored in ``dtype`` may be: NumPyro's ``1e-6``,
    or the dtype's rounding of the sum (each stored probability is rounded by half an ulp, so
    their sum by at most ``eps / 2``) where that is larger (float16, bfloat16)."""
    return max(1e-6, float(jnp.finfo(dtype).eps)) if jnp.issubdtype(dtype, jnp.floating) else 1e-6


class _Simplex(type(constraints.simplex)):
    """NumPyro's simplex, checked in float32 at least, within :func:`simplex_tolerance`: NumPyro's
    own sums in the probabilities' dtype, so float16 probabilities that sum to one are refused."""

    def __call__(self, x):
        x = jnp.asarray(x)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
        wide = x.astype(jnp.promote_types(dtype, jnp.float32))
        return jnp.all(wide >= 0, axis=-1) & (jnp.abs(wide.sum(-1) - 1) <= simplex_tolerance(dtype))


class derived_property(lazy_property):
    """A parameter derived from the one given (``probs`` from ``logits`` or the reverse), recomputed
    on each read and never cached in the instance: NumPyro flattens a distribution from its
    ``__dict__``, so a cached value would change its pytree structure (and break ``lax.scan``
    over distributions) once read. Still a ``lazy_property``, so that NumPyro's validation and
    ``get_args`` see only the parameter given."""

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return self
        return self.wrapped(instance)


class _ReparameterizedOneHot(constraints.ParameterFreeConstraint):
    """One-hot vectors drawn by a gradient estimator.

    The values are discrete, but ``is_discrete`` is ``False``: NumPyro reads that flag as "this
    site carries no pathwise gradient" (SVI warns that it cannot infer such sites, MCMC and
    autoguides skip them). Our sites do carry a pathwise gradient, so SVI must treat them like any
    reparameterized site, and must not warn.
    """

    event_dim = 1
    is_discrete = False

    def __call__(self, x):
        is_binary = (x == 0) | (x == 1)
        return jnp.all(is_binary, axis=-1) & (jnp.sum(x, axis=-1) == 1)

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jax.nn.one_hot(0, jnp.shape(prototype)[-1]), jnp.shape(prototype))


class _ReparameterizedBoolean(constraints.ParameterFreeConstraint):
    """Values 0 or 1 drawn by a gradient estimator; not ``is_discrete``, for the reason above."""

    event_dim = 0
    is_discrete = False

    def __call__(self, x):
        return (x == 0) | (x == 1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


def probs_or_logits(fn):
    """``{"logits": fn.logits}`` or ``{"probs": fn.probs}``, whichever parameterises the host
    distribution ``fn``: NumPyro's ``...Logits``/``...Probs`` classes each declare only their own
    parameter in ``arg_constraints``."""
    if "logits" in fn.arg_constraints:
        return {"logits": fn.logits}
    return {"probs": fn.probs}


class _MaskableRealVector(constraints.ParameterFreeConstraint):
    """Logit vectors in which a category may be masked by ``-inf`` (probability exactly zero), as
    long as one is not; NaN and ``+inf`` are rejected. NumPyro's ``real_vector`` rejects ``-inf``,
    which would refuse a masked category, and a guide initialised from a prior that has one."""

    event_dim = 1

    def __call__(self, x):
        return jnp.all((x == x) & (x != jnp.inf), axis=-1) & jnp.any(x != -jnp.inf, axis=-1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


maskable_real_vector = _MaskableRealVector()
simplex = _Simplex()
reparameterized_one_hot = _ReparameterizedOneHot()
reparameterized_boolean = _ReparameterizedBoolean()
