import pyro.distributions as host
import torch
from torch.distributions import constraints
from torch.nn.functional import logsigmoid

from pyro_redge._math import categorical_kl, expected_log_prob, safe_log
from pyro_redge.distributions.registry import register
from pyro_redge.distributions.util import EstimatorSampling, check_estimator, probs_or_logits
from pyro_redge.estimators import DEFAULT_ESTIMATOR


class Bernoulli(EstimatorSampling, host.Bernoulli):
    r"""A Bernoulli whose samples are reparameterized by a gradient estimator applied to the
    two-category distribution over :math:`\{0, 1\}`.

    ``sample()`` and ``rsample()`` return hard values, exactly ``0.`` or ``1.``; the gradient of
    ``rsample()`` is the estimator's surrogate. ``log_prob`` is exact and linear in the value,

    .. math:: \log p(z) = z \log p + (1 - z) \log (1 - p),

    so it is differentiable in the value as well as in the parameters.

    :param torch.Tensor probs: the probability of a one, in [0, 1].
    :param torch.Tensor logits: the log-odds of a one.
    :param estimator: a gradient estimator from :mod:`pyro_redge.estimators`; default
        ``ReinMax()`` (:data:`~pyro_redge.estimators.DEFAULT_ESTIMATOR`).

    **Example**

    >>> import torch
    >>> from pyro_redge import Bernoulli
    >>> probs = torch.tensor([0.2, 0.9], requires_grad=True)
    >>> d = Bernoulli(probs=probs)
    >>> b = d.rsample()
    >>> b.shape, set(b.tolist()) <= {0.0, 1.0}
    (torch.Size([2]), True)
    >>> torch.allclose(d.log_prob(torch.tensor([1.0, 0.0])), torch.tensor([0.2, 0.1]).log())
    True
    >>> b.sum().backward()
    >>> probs.grad.shape
    torch.Size([2])
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}

    def __init__(self, probs=None, logits=None, estimator=DEFAULT_ESTIMATOR, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self.estimator = check_estimator(estimator, type(self).__name__)
        self._parameterized_by_logits = logits is not None
        super().__init__(probs=probs, logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same class with expanded parameters, keeping the estimator."""
        new = self._get_checked_instance(Bernoulli, _instance)
        new.estimator = self.estimator
        new._parameterized_by_logits = self._parameterized_by_logits
        return super().expand(batch_shape, _instance=new)

    @property
    def _log_probs(self):
        """Normalised log-probabilities of ``(0, 1)`` on a trailing axis of size two."""
        if self._parameterized_by_logits:
            return torch.stack([logsigmoid(-self.logits), logsigmoid(self.logits)], dim=-1)
        return torch.stack([safe_log(1 - self.probs), safe_log(self.probs)], dim=-1)

    def _draw(self, sample_shape):
        log_probs = self._log_probs
        shape = self._extended_shape(sample_shape) + log_probs.shape[-1:]
        return self.estimator(log_probs.expand(shape))[..., 1]

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self._param.dtype, device=self._param.device)
        return expected_log_prob(torch.stack([1 - value, value], dim=-1), self._log_probs)

    @property
    def mode(self):
        """The more probable value, ``0.`` on a tie (never NaN, unlike torch's ``Bernoulli.mode``)."""
        log_probs = self._log_probs
        return (log_probs[..., 1] > log_probs[..., 0]).to(log_probs.dtype)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Ours with the parameter (``probs`` or ``logits``, as ``fn`` has it) of a host
        ``Bernoulli`` ``fn``; ``truncation`` is unused (a finite support)."""
        return cls(**probs_or_logits(fn), estimator=estimator)

    @staticmethod
    def kl_divergence(p, q):
        """The exact KL between two Bernoullis, each ours or a host ``Bernoulli``; ``inf`` where
        ``p`` charges a value ``q`` does not."""
        return categorical_kl(_normalised_log_probs(p), _normalised_log_probs(q))

    def guide_parameter(self):
        """The log-odds (a mean-field guide's logits) and their constraint."""
        log_probs = self._log_probs
        return log_probs[..., 1] - log_probs[..., 0], constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A guide of this family with logits ``parameter``."""
        return Bernoulli(logits=parameter, estimator=estimator)


def _normalised_log_probs(distribution):
    if not isinstance(distribution, Bernoulli):
        distribution = Bernoulli.from_host(distribution, DEFAULT_ESTIMATOR)
    return distribution._log_probs


register(Bernoulli, hosts=(torch.distributions.Bernoulli,))
