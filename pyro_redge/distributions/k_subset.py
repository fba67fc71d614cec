import itertools
import numbers
import warnings

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from pyro_redge._math import expected_log_prob, log_elementary_symmetric, subset_from_uniform, top_k_one_hot
from pyro_redge.distributions.registry import register
from pyro_redge.distributions.util import EstimatorSampling, check_estimator
from pyro_redge.estimators import AIMLE, MarginalStraightThrough

#: The estimator of a ``KSubset`` built without one: exact in law (its forward pass is an exact draw),
#: so that ``sample()`` follows ``log_prob``. Estimators are immutable, so one instance is shared by
#: every distribution.
DEFAULT_ESTIMATOR = MarginalStraightThrough()


class LawMismatchWarning(UserWarning):
    """A distribution draws through an estimator whose samples do not follow the distribution's own
    ``log_prob`` (e.g. a :class:`KSubset` with perturb-and-MAP): an ELBO that scores those samples,
    or ``Predictive``, is then biased. Warned once per estimator."""


_warned_law_mismatch = set()


def warn_law_mismatch(estimator, distribution_name):
    """Warn once per estimator (a :class:`LawMismatchWarning`) that a perturb-and-MAP estimator does
    not draw from the exponential family that ``log_prob`` scores."""
    if estimator.exact_subsets or estimator in _warned_law_mismatch:
        return
    _warned_law_mismatch.add(estimator)
    warnings.warn(
        f"{distribution_name} with estimator {estimator!r} draws by perturb-and-MAP (top-k of perturbed "
        "logits), whose law is not the distribution that log_prob scores (total variation about 0.04 with "
        "Gumbel noise, 0.2 with Sum-of-Gamma noise, at n = 6, k = 2): an ELBO mixing these samples with "
        "log_prob, and Predictive, are biased. Use "
        "MarginalStraightThrough() (the default, an exact draw) or sample_exact() for exact draws.",
        LawMismatchWarning,
        stacklevel=3,
    )


class _KHot(constraints.Constraint):
    """Vectors of 0s and 1s with exactly ``k`` ones on the last axis."""

    is_discrete = True
    event_dim = 1

    def __init__(self, k):
        self.k = k
        super().__init__()

    def check(self, value):
        return ((value == 0) | (value == 1)).all(-1) & (value.sum(-1) == self.k)

    def __repr__(self):
        return f"KHot(k={self.k})"


class _MaskableLogits(constraints.Constraint):
    """Logit vectors in which an item may be masked by ``-inf``; NaN and ``+inf`` are rejected.
    (PyTorch's ``real_vector`` lets ``+inf`` through and fails on an empty batch.)"""

    event_dim = 1

    def check(self, value):
        return ((value == value) & (value != torch.inf)).all(-1)

    def __repr__(self):
        return "MaskableLogits()"


class KSubset(EstimatorSampling, TorchDistribution):
    r"""The exponential family over k-subsets of n items, as k-hot vectors,

    .. math:: p(z) = \exp\left(\langle z, \theta\rangle - \log e_k(e^{\theta})\right),
        \qquad z \in \{0, 1\}^n,\ \textstyle\sum_i z_i = k,

    with :math:`e_k` the k-th elementary symmetric polynomial, computed as a Poisson-binomial
    probability by a tree of polynomial products (O(n·k) work, O(log n) sequential steps, stable for
    logits of any magnitude; see :func:`~pyro_redge._math.log_elementary_symmetric`). ``log_prob``
    is exact, :attr:`marginals` (:math:`\mathbb{E}[z] = \nabla_\theta \log e_k`) are exact, and
    :meth:`sample_exact` draws exactly, top-down through the same tree (O(log n) vectorised steps).
    ``rsample()`` (and ``sample()``, its detached value) draws through the estimator: for
    :class:`~pyro_redge.estimators.MarginalStraightThrough` (the default) and for the score-function
    :class:`~pyro_redge.estimators.RLOO` that is an exact draw; for
    :class:`~pyro_redge.estimators.IMLE` and :class:`~pyro_redge.estimators.AIMLE` it is
    perturb-and-MAP (top-k of perturbed logits), whose law is *not* this distribution (total
    variation about 0.04 with Gumbel noise, 0.2 with Sum-of-Gamma noise, at n = 6, k = 2):
    ``Predictive`` and
    any ELBO that scores those samples with :meth:`log_prob` are then biased, and building such a
    distribution warns once per estimator (:class:`LawMismatchWarning`).

    Masked items (``-inf`` logits) are never drawn and get exactly zero gradients; ``log_prob`` of
    a subset that avoids them is finite. Logits must have a floating dtype.

    With :class:`~pyro_redge.estimators.AIMLE` and no ``beta``, every draw uses the estimator's
    fixed ``initial_beta``. To adapt :math:`\beta`, keep an :class:`~pyro_redge.AIMLEState`
    outside (``state = estimator.init_state()``), pass ``beta=`` a leaf tensor holding
    ``state.beta`` that requires grad, and after the backward pass advance the state with
    ``estimator.update_state(state, beta.grad)`` (see :class:`~pyro_redge.estimators.AIMLE`).

    :param torch.Tensor logits: the item scores :math:`\theta` (n on the last axis).
    :param int k: the subset size, an integer in [1, n].
    :param estimator: an estimator defined for k-subsets (``IMLE``, ``AIMLE``,
        ``MarginalStraightThrough``); default: one shared
        :class:`~pyro_redge.estimators.MarginalStraightThrough` ``()`` instance.
    :param beta: AIMLE's current :math:`\beta` (a number or a 0-dimensional tensor), only with
        an ``AIMLE`` estimator; default its ``initial_beta``.

    **Example**

    >>> import torch
    >>> from pyro_redge import KSubset
    >>> d = KSubset(torch.zeros(5), k=2)
    >>> z = d.rsample()
    >>> z.sum().item()
    2.0
    >>> torch.allclose(d.marginals, torch.full((5,), 0.4))
    True
    >>> torch.allclose(d.log_prob(z), -torch.tensor(10.0).log())  # one of the 10 subsets
    True

    **References**

    [1] `Adaptive Perturbation-Based Gradient Estimation for Discrete Latent Variable Models`,
        Pasquale Minervini, Luca Franceschi, Mathias Niepert (AAAI 2023)
    [2] `SIMPLE: A Gradient Estimator for k-Subset Sampling`, Kareem Ahmed, Zhe Zeng,
        Mathias Niepert, Guy Van den Broeck (ICLR 2023)
    """

    arg_constraints = {"logits": _MaskableLogits()}
    has_enumerate_support = True

    def __init__(self, logits, k, estimator=None, beta=None, validate_args=None):
        logits = torch.as_tensor(logits)
        if logits.dim() < 1:
            raise ValueError(f"logits must be at least one-dimensional, got shape {tuple(logits.shape)}")
        if not logits.dtype.is_floating_point:
            raise ValueError(f"logits must have a floating dtype, got {logits.dtype}")
        n = logits.shape[-1]
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
            raise ValueError(f"k must be an integer in [1, n] = [1, {n}], got {k!r}")
        estimator = DEFAULT_ESTIMATOR if estimator is None else estimator
        self.estimator = check_subset_estimator(estimator, type(self).__name__)
        warn_law_mismatch(estimator, type(self).__name__)
        if beta is not None and not isinstance(estimator, AIMLE):
            raise ValueError(
                f"beta of {type(self).__name__} is AIMLE's scale: it needs an AIMLE estimator, got {estimator!r}"
            )
        self.logits, self.k, self.beta = logits, int(k), beta
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return _KHot(self.k)

    def expand(self, batch_shape, _instance=None):
        """The same class with expanded logits, keeping ``k`` and the estimator."""
        new = self._get_checked_instance(KSubset, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.event_shape)
        new.k, new.estimator, new.beta = self.k, self.estimator, self.beta
        super(KSubset, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @classmethod
    def infer_shapes(cls, logits, k=None, estimator=None, beta=None):
        """``(batch_shape, event_shape)`` from the shape of ``logits``: the items are the event."""
        return tuple(logits[:-1]), tuple(logits[-1:])

    @property
    def log_normalizer(self):
        r""":math:`\log e_k(e^{\theta})`, per batch element."""
        return log_elementary_symmetric(self.logits, self.k)

    @property
    def marginals(self):
        r"""The exact inclusion probabilities :math:`\mathbb{E}[z] = \nabla_\theta \log e_k`,
        differentiable in the logits."""
        with torch.enable_grad():
            logits = self.logits if self.logits.requires_grad else self.logits.detach().requires_grad_()
            (marginals,) = torch.autograd.grad(
                log_elementary_symmetric(logits, self.k).sum(), logits, create_graph=self.logits.requires_grad
            )
        return marginals

    @property
    def mean(self):
        return self.marginals

    @property
    def variance(self):
        marginals = self.marginals
        return marginals * (1 - marginals)

    def entropy(self):
        return self.log_normalizer - (self.marginals * self.logits).sum(-1)

    def _draw(self, sample_shape):
        logits = self.logits.expand(self._extended_shape(sample_shape))
        if self.beta is None:
            return self.estimator(logits, k=self.k)
        return self.estimator(logits, k=self.k, beta=self.beta)

    def sample_exact(self, sample_shape=torch.Size()):
        """Exact draws of this distribution (no gradient), top-down through the product tree."""
        shape = self._extended_shape(sample_shape)
        logits = self.logits.detach().expand(shape)
        return subset_from_uniform(logits, self.k, torch.rand(shape, dtype=logits.dtype, device=logits.device))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return expected_log_prob(value, self.logits) - self.log_normalizer

    def enumerate_support(self, expand=True):
        n = self.event_shape[0]
        subsets = torch.zeros(
            len(list(itertools.combinations(range(n), self.k))), n, dtype=self.logits.dtype, device=self.logits.device
        )
        for row, items in enumerate(itertools.combinations(range(n), self.k)):
            subsets[row, list(items)] = 1.0
        subsets = subsets.reshape((subsets.shape[0],) + (1,) * len(self.batch_shape) + (n,))
        if expand:
            subsets = subsets.expand((subsets.shape[0],) + self.batch_shape + (n,))
        return subsets

    @property
    def mode(self):
        """The most probable subset: the k-hot vector of the ``k`` largest logits."""
        return top_k_one_hot(self.logits.detach(), self.k)

    @classmethod
    def from_host(cls, fn, estimator, truncation=None):
        """Not defined: no host has a k-subset distribution for ``KSubset`` to replace."""
        raise ValueError(f"{cls.__name__} replaces no host distribution, got {type(fn).__name__}")

    @staticmethod
    def kl_divergence(p, q):
        r"""The exact KL between two k-subset distributions with the same ``n`` and ``k``, through
        the marginals :math:`\mu_p`:

        .. math:: \mathrm{KL}(p\,\|\,q) = \langle \mu_p, \theta_p - \theta_q\rangle
            - \log e_k(e^{\theta_p}) + \log e_k(e^{\theta_q}).
        """
        if p.k != q.k or p.event_shape != q.event_shape:
            raise ValueError(
                "KL between k-subset distributions needs the same n and k, got "
                f"n = {p.event_shape[0]}, k = {p.k} and n = {q.event_shape[0]}, k = {q.k}"
            )
        return (p.marginals * (p.logits - q.logits)).sum(-1) - p.log_normalizer + q.log_normalizer

    def guide_parameter(self):
        """The prior's logits (a mean-field guide's initial logits) and their constraint."""
        return self.logits, constraints.real

    def guide(self, parameter, estimator, truncation=None):
        """A guide of this family with logits ``parameter`` and the prior's ``k``."""
        return KSubset(parameter, self.k, estimator)


def check_subset_estimator(estimator, distribution_name):
    """An estimator defined for k-subsets that returns one sample per call, or a ``ValueError``."""
    check_estimator(estimator, distribution_name)
    if not estimator.supports_subsets:
        raise ValueError(f"estimator of {distribution_name}: {estimator._no_subsets()}")
    return estimator


register(KSubset)
