import torch
from torch.distributions import constraints

from pyro_redge.estimators import Estimator


def check_estimator(estimator, distribution_name):
    """The estimator, or a ``ValueError`` naming the argument and what is allowed."""
    if not isinstance(estimator, Estimator):
        raise ValueError(
            f"estimator of {distribution_name} must be an instance of "
            f"pyro_redge.estimators.Estimator (StraightThrough, GumbelSoftmax, ReinMax, ReDGE, IMLE, AIMLE, "
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


def validation_enabled(validate_args):
    """Whether a distribution built with ``validate_args`` validates (Pyro's global default otherwise)."""
    if validate_args is not None:
        return bool(validate_args)
    return torch.distributions.Distribution._validate_args


def check_simplex(name, probs):
    """Probabilities that are non-negative and sum to one on the last axis, or a ``ValueError``."""
    if not bool(constraints.simplex.check(probs).all()):
        raise ValueError(
            f"{name} must be non-negative and sum to 1 over the last axis (within 1e-6); "
            f"got {probs!r}. Normalise them, or pass logits."
        )


def probs_or_logits(fn):
    """``{"logits": fn.logits}`` or ``{"probs": fn.probs}``, whichever parameterises the host
    distribution ``fn`` (a ``OneHotCategorical`` is read through the ``Categorical`` it wraps).

    torch derives the other parameter lazily and has no public way to tell which one was given;
    the given one is the one already stored in the instance's ``__dict__``.
    """
    inner = getattr(fn, "_categorical", fn)
    if "logits" in vars(inner):
        return {"logits": fn.logits}
    return {"probs": fn.probs}
