import pyro.distributions as host
import torch
from torch.distributions import constraints

from pyro_redge._math import categorical_kl, expected_log_prob, safe_log
from pyro_redge.distributions.registry import register
from pyro_redge.distributions.util import (
    EstimatorSampling,
    check_estimator,
    check_real_logits,
    check_simplex,
    probs_or_logits,
    validation_enabled,
)
from pyro_redge.estimators import DEFAULT_ESTIMATOR


class OneHotCategorical(EstimatorSampling, host.OneHotCategorical):
    r"""A one-hot categorical whose samples are reparameterized by a gradient estimator.

    ``sample()`` and ``rsample()`` both return *hard* one-hot vectors (bitwise 0 and 1); the
    gradient of ``rsample()`` with respect to ``probs``/``logits`` is the estimator's surrogate,
    so :class:`~pyro.infer.Trace_ELBO` optimizes a guide of this class by pathwise gradients
    (``has_rsample`` is ``True`` for a pathwise estimator: no score-function term is added; with
    :class:`~pyro_redge.estimators.RLOO` or :class:`~pyro_redge.estimators.DisARM` it is ``False``
    and :class:`~pyro_redge.infer.ScoreFunction_ELBO` forms the gradient). ``log_prob`` is the
    exact pmf,

    .. math:: \log p(z) = \sum_k z_k \log \pi_k ,

    written multilinearly so that it is differentiable in the value as well as in the parameters.

    :param torch.Tensor probs: event probabilities (normalised over the last axis).
    :param torch.Tensor logits: event log-probabilities (unnormalised).
    :param estimator: a gradient estimator from :mod:`pyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~pyro_redge.estimators.DEFAULT_ESTIMATOR`).

    Under validation the parameters are checked in float32 at least: torch checks the probabilities
    derived from float16 or bfloat16 logits in that precision, and refuses a few percent of valid ones.

    **Example**

    >>> import torch
    >>> from pyro_redge import OneHotCategorical, ReinMax
    >>> logits = torch.zeros(3, requires_grad=True)
    >>> d = OneHotCategorical(logits=logits, estimator=ReinMax())
    >>> z = d.rsample((2,))
    >>> z.shape, z.sum(-1).tolist()
    (torch.Size([2, 3]), [1.0, 1.0])
    >>> torch.allclose(d.log_prob(z), -torch.tensor(3.0).log())
    True
    >>> (z @ torch.tensor([1.0, 2.0, 3.0])).sum().backward()  # the gradient flows through the sample
    >>> bool(logits.grad.abs().sum() > 0)
    True
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, probs=None, logits=None, estimator=DEFAULT_ESTIMATOR, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self.estimator = check_estimator(estimator, type(self).__name__)
        self._parameterized_by_logits = logits is not None
        validate = validation_enabled(validate_args)
        if validate:
            # torch.distributions.Categorical divides probs by their sum before validating them,
            # which would silently accept probabilities that do not sum to one; and it checks in the
            # parameter's own precision. Ours check once, in float32 at least; torch's are skipped.
            if probs is not None:
                check_simplex("probs", probs)
            else:
                check_real_logits("logits", logits)
        default = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)
        try:
            super().__init__(probs=probs, logits=logits, validate_args=False)
        finally:
            torch.distributions.Distribution.set_default_validate_args(default)
        if validate_args is None:
            del self._validate_args  # follow the global default, as torch does
        else:
            self._validate_args = validate

    def expand(self, batch_shape, _instance=None):
        """The same class with expanded parameters, keeping the estimator."""
        new = self._get_checked_instance(OneHotCategorical, _instance)
        new.estimator = self.estimator
        new._parameterized_by_logits = self._parameterized_by_logits
        return super().expand(batch_shape, _instance=new)

    @property
    def _log_probs(self):
        """Normalised log-probabilities, ``-inf`` (not a clamped finite value) where ``probs`` is 0."""
        if self._parameterized_by_logits:
            return self.logits
        return safe_log(self.probs)

    def _draw(self, sample_shape):
        shape = self._extended_shape(sample_shape)
        return self.estimator(self._log_probs.expand(shape))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return expected_log_prob(value, self._log_probs)

    @property
    def mode(self):
        """The one-hot vector of the most probable category (the first one on a tie)."""
        log_probs = self._log_probs
        return torch.nn.functional.one_hot(log_probs.argmax(-1), log_probs.shape[-1]).to(log_probs.dtype)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the parameters (``probs`` or ``logits``, as ``fn`` has them) of a host
        ``OneHotCategorical`` or ``Categorical`` ``fn``; ``truncation`` is unused (a finite support)."""
        return cls(**probs_or_logits(fn), estimator=estimator)

    @staticmethod
    def kl_divergence(p, q):
        """The exact KL between two categoricals over the same categories, each ours or a host
        ``OneHotCategorical``/``Categorical``; ``inf`` where ``p`` charges a category ``q`` does not."""
        return categorical_kl(_normalised_log_probs(p), _normalised_log_probs(q))

    def guide_parameter(self):
        """The normalised log-probabilities (a mean-field guide's logits) and their constraint."""
        return self._log_probs, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A guide of this family with logits ``parameter``."""
        return OneHotCategorical(logits=parameter, estimator=estimator)


def _normalised_log_probs(distribution):
    if not isinstance(distribution, OneHotCategorical):
        distribution = OneHotCategorical.from_host(distribution, DEFAULT_ESTIMATOR)
    return distribution._log_probs


register(OneHotCategorical, hosts=(torch.distributions.OneHotCategorical,), kl_hosts=(torch.distributions.Categorical,))
