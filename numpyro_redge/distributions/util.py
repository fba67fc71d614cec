import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.util import not_jax_tracer

from numpyro_redge.estimators import Estimator


def check_estimator(estimator, distribution_name):
    """The estimator, or a ``ValueError`` naming the argument and what is allowed."""
    if not isinstance(estimator, Estimator):
        raise ValueError(
            f"estimator of {distribution_name} must be an instance of "
            f"numpyro_redge.estimators.Estimator (StraightThrough, GumbelSoftmax, ReinMax, ReDGE, IMLE, AIMLE, "
            "MarginalStraightThrough), "
            f"got {estimator!r}"
        )
    if not estimator.one_sample_per_call:
        raise ValueError(
            f"estimator of {distribution_name} must return one sample per call, but "
            f"{estimator!r} returns a leading axis of samples: use samples=1 in a distribution "
            "(or the estimator's functional form)"
        )
    return estimator


def check_value(distribution, value):
    """Under validation, a concrete ``value`` outside the support is a ``ValueError`` (NumPyro only
    warns); a traced value cannot be checked and is let through."""
    if distribution._validate_args:
        inside = distribution.support(value)
        if not_jax_tracer(inside) and not np.all(inside):
            raise ValueError(
                f"value must be in the support {distribution.support} of {type(distribution).__name__}, got {value!r}"
            )


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
reparameterized_one_hot = _ReparameterizedOneHot()
reparameterized_boolean = _ReparameterizedBoolean()
