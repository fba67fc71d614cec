import torch

from pyro_redge.estimators import Estimator


def check_estimator(estimator, distribution_name):
    """The estimator, or a ``ValueError`` naming the argument and what is allowed."""
    if not isinstance(estimator, Estimator):
        raise ValueError(
            f"estimator of {distribution_name} must be an instance of "
            f"pyro_redge.estimators.Estimator (StraightThrough, GumbelSoftmax, GumbelRao, ReinMax, ReDGE, "
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


def _check_pathwise(distribution):
    """``rsample`` of a distribution whose estimator has no pathwise gradient: a ``NotImplementedError``,
    as torch's non-reparameterizable distributions raise, rather than a sample without a gradient."""
    if not distribution.estimator.pathwise:
        raise NotImplementedError(
            f"{type(distribution).__name__} with {distribution.estimator!r} has no rsample: a score-function "
            "estimator's gradient comes from the ELBO (pyro_redge.infer.ScoreFunction_ELBO); use sample()"
        )


class EstimatorSampling:
    """``sample``, ``rsample`` and ``has_rsample`` of a distribution that draws through its
    ``estimator`` in ``_draw(sample_shape)``: both return the hard draw (``sample`` without a
    gradient); ``has_rsample`` is ``True`` for a pathwise estimator and ``False`` for a
    score-function one (:class:`~pyro_redge.estimators.RLOO`, :class:`~pyro_redge.estimators.DisARM`),
    whose gradient the ELBO forms from the score (Pyro reads ``has_rsample`` for that), and whose
    ``rsample`` raises. Listed first among the bases, before the host class."""

    @property
    def has_rsample(self):
        return self.estimator.pathwise

    def rsample(self, sample_shape=torch.Size()):
        _check_pathwise(self)
        return self._draw(sample_shape)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self._draw(sample_shape)


def validation_enabled(validate_args):
    """Whether a distribution built with ``validate_args`` validates (Pyro's global default otherwise)."""
    if validate_args is not None:
        return bool(validate_args)
    return torch.distributions.Distribution._validate_args


def simplex_tolerance(dtype):
    """How far from one the sum of probabilities stored in ``dtype`` may be: torch's ``1e-6``, or
    the dtype's rounding of the sum (each stored probability is rounded by half an ulp, so their
    sum by at most ``eps / 2``) where that is larger (float16, bfloat16)."""
    return max(1e-6, torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-6


def compute_precision(tensor):
    """``tensor`` in float32 at least: torch checks a float16 or bfloat16 parameter in its own
    precision, where a valid one fails the simplex check."""
    if not tensor.dtype.is_floating_point:
        return tensor.to(torch.get_default_dtype())
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def check_simplex(name, probs):
    """Probabilities that are non-negative and sum to one on the last axis (in float32 at least,
    within :func:`simplex_tolerance`), or a ``ValueError``."""
    wide = compute_precision(probs)
    valid = (wide >= 0).all(-1) & ((wide.sum(-1) - 1).abs() <= simplex_tolerance(probs.dtype))
    if not bool(valid.all()):
        raise ValueError(
            f"{name} must be non-negative and sum to 1 over the last axis (within 1e-6, or the rounding of "
            f"the probabilities' dtype if larger); got {probs!r}. Normalise them, or pass logits."
        )


def check_real_logits(name, logits):
    """Logit vectors without NaN or ``+inf`` and with at least one category not ``-inf`` (``-inf``
    masks a category, as torch allows), or a ``ValueError``."""
    valid = ~(torch.isnan(logits) | (logits == float("inf"))).any(-1) & (logits != -float("inf")).any(-1)
    if not bool(valid.all()):
        raise ValueError(
            f"{name} must be real (no NaN or +inf; -inf masks a category) with at least one category not -inf "
            f"over the last axis; got {logits!r}"
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
