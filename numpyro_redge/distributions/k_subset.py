import itertools
import numbers
import warnings

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution, constraints

from numpyro_redge._math import (
    expected_log_prob,
    inclusion_probabilities,
    log_elementary_symmetric,
    subset_from_uniform,
    top_k_one_hot,
)
from numpyro_redge.distributions.registry import register
from numpyro_redge.distributions.util import (
    check_estimator,
    check_value,
    estimator_is_pathwise,
    estimator_support,
    mask_outside_support,
    maskable_real_vector,
)
from numpyro_redge.estimators import AIMLE, MarginalStraightThrough

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


class _ReparameterizedKHot(constraints.Constraint):
    """Vectors of 0s and 1s with exactly ``k`` ones on the last axis, drawn by a gradient
    estimator: not ``is_discrete``, for the reason given in :mod:`numpyro_redge.distributions.util`."""

    is_discrete = False
    event_dim = 1

    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return jnp.all((x == 0) | (x == 1), axis=-1) & (jnp.sum(x, axis=-1) == self.k)

    def feasible_like(self, prototype):
        n = jnp.shape(prototype)[-1]
        return jnp.broadcast_to((jnp.arange(n) < self.k).astype(jnp.result_type(prototype)), jnp.shape(prototype))

    def tree_flatten(self):
        return (), ((), {"k": self.k})

    def __repr__(self):
        return f"ReparameterizedKHot(k={self.k})"


class KSubset(Distribution):
    r"""The exponential family over k-subsets of n items, as k-hot vectors,

    .. math:: p(z) = \exp\left(\langle z, \theta\rangle - \log e_k(e^{\theta})\right),
        \qquad z \in \{0, 1\}^n,\ \textstyle\sum_i z_i = k,

    with :math:`e_k` the k-th elementary symmetric polynomial, computed as a Poisson-binomial
    probability by a tree of polynomial products (O(n·k) work, O(log n) sequential steps, stable for
    logits of any magnitude; see :func:`~numpyro_redge._math.log_elementary_symmetric`). ``log_prob``
    is exact, :attr:`marginals` (:math:`\mathbb{E}[z] = \nabla_\theta \log e_k`) are exact, and
    :meth:`sample_exact` draws exactly, top-down through the same tree (O(log n) vectorised
    steps). ``sample()`` draws through the
    estimator: for :class:`~numpyro_redge.estimators.MarginalStraightThrough` (the default) and
    the score-function :class:`~numpyro_redge.estimators.RLOO` an exact draw; for
    :class:`~numpyro_redge.estimators.IMLE` / :class:`~numpyro_redge.estimators.AIMLE`
    perturb-and-MAP, whose law is *not* this distribution (total variation about 0.04 with Gumbel
    noise, 0.2 with Sum-of-Gamma noise, at n = 6, k = 2): ``Predictive`` and any ELBO that
    scores those samples with :meth:`log_prob` are then biased,
    and building such a distribution warns once per estimator (:class:`LawMismatchWarning`).

    Masked items (``-inf`` logits) are never drawn and get exactly zero gradients; ``log_prob`` of
    a subset that avoids them is finite. Logits must have a floating dtype.

    With :class:`~numpyro_redge.estimators.AIMLE` and no ``beta``, every draw uses the estimator's
    fixed ``initial_beta``. To adapt :math:`\beta`, keep an :class:`~numpyro_redge.AIMLEState`
    outside (``state = estimator.init_state()``), pass ``beta=state.beta`` (a pytree data field,
    so it may be traced), take the cotangent of ``beta`` as the observed density, and advance the
    state with ``estimator.update_state(state, density)`` (see
    :class:`~numpyro_redge.estimators.AIMLE`).

    :param logits: the item scores :math:`\theta` (n on the last axis).
    :param int k: the subset size, an integer in [1, n] (static).
    :param estimator: an estimator defined for k-subsets (``IMLE``, ``AIMLE``,
        ``MarginalStraightThrough``); default: one shared
        :class:`~numpyro_redge.estimators.MarginalStraightThrough` ``()`` instance.
    :param beta: AIMLE's current :math:`\beta` (a number or a 0-dimensional array), only with an
        ``AIMLE`` estimator; default its ``initial_beta``.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import KSubset
    >>> d = KSubset(jnp.zeros(5), k=2)
    >>> z = d.sample(jax.random.PRNGKey(0))
    >>> float(z.sum())
    2.0
    >>> bool(jnp.allclose(d.marginals, 0.4))
    True
    >>> bool(jnp.allclose(d.log_prob(z), -jnp.log(10.0)))  # one of the 10 subsets
    True

    **References**

    [1] `Adaptive Perturbation-Based Gradient Estimation for Discrete Latent Variable Models`,
        Pasquale Minervini, Luca Franceschi, Mathias Niepert (AAAI 2023)
    [2] `SIMPLE: A Gradient Estimator for k-Subset Sampling`, Kareem Ahmed, Zhe Zeng,
        Mathias Niepert, Guy Van den Broeck (ICLR 2023)
    """

    arg_constraints = {"logits": maskable_real_vector}
    reparametrized_params = ["logits"]
    pytree_data_fields = ("logits", "beta")
    pytree_aux_fields = ("k", "estimator")
    has_enumerate_support = True

    def __init__(self, logits, k, estimator=None, beta=None, *, validate_args=None):
        logits = jnp.asarray(logits)
        if jnp.ndim(logits) < 1:
            raise ValueError(f"logits must be at least one-dimensional, got shape {jnp.shape(logits)}")
        if not jnp.issubdtype(logits.dtype, jnp.floating):
            raise ValueError(f"logits must have a floating dtype, got {logits.dtype}")
        n = jnp.shape(logits)[-1]
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
        super().__init__(batch_shape=jnp.shape(logits)[:-1], event_shape=(n,), validate_args=validate_args)

    has_rsample = estimator_is_pathwise

    @property
    def support(self):
        return estimator_support(self, _ReparameterizedKHot(self.k))

    def expand(self, batch_shape):
        """The same class with broadcast logits, keeping ``k`` and the estimator."""
        logits = jnp.broadcast_to(self.logits, tuple(batch_shape) + self.event_shape)
        return type(self)(logits, self.k, self.estimator, self.beta, validate_args=False)

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
        r"""The exact inclusion probabilities :math:`\mathbb{E}[z] = \nabla_\theta \log e_k`."""
        return inclusion_probabilities(self.logits, self.k)

    @property
    def mean(self):
        return self.marginals

    @property
    def variance(self):
        marginals = self.marginals
        return marginals * (1 - marginals)

    def entropy(self):
        return self.log_normalizer - (self.marginals * self.logits).sum(-1)

    def sample(self, key, sample_shape=()):
        logits = jnp.broadcast_to(self.logits, tuple(sample_shape) + self.batch_shape + self.event_shape)
        if self.beta is None:
            return self.estimator(key, logits, k=self.k)
        return self.estimator(key, logits, k=self.k, beta=self.beta)

    def sample_exact(self, key, sample_shape=()):
        """Exact draws of this distribution (no gradient), top-down through the product tree."""
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        logits = jnp.broadcast_to(self.logits, shape)
        return subset_from_uniform(logits, self.k, jax.random.uniform(key, shape, dtype=logits.dtype))

    def log_prob(self, value):
        inside = check_value(self, value)
        return mask_outside_support(inside, expected_log_prob(value, self.logits) - self.log_normalizer)

    def enumerate_support(self, expand=True):
        n = self.event_shape[0]
        subsets = jnp.asarray(
            [[1.0 if i in items else 0.0 for i in range(n)] for items in itertools.combinations(range(n), self.k)],
            dtype=jnp.result_type(self.logits),
        )
        subsets = subsets.reshape((subsets.shape[0],) + (1,) * len(self.batch_shape) + (n,))
        if expand:
            subsets = jnp.broadcast_to(subsets, (subsets.shape[0],) + self.batch_shape + (n,))
        return subsets

    @property
    def mode(self):
        """The most probable subset: the k-hot vector of the ``k`` largest logits."""
        return top_k_one_hot(jax.lax.stop_gradient(self.logits), self.k)

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
