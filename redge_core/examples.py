"""Small models with discrete latent variables, each small enough to enumerate, and their exact
posteriors in NumPy: the references that the tests and the benchmarks fit against.

The models themselves, written with each host's own distributions, and hand-written guides for
them, are in :mod:`pyro_redge.examples` and :mod:`numpyro_redge.examples` (the same names in both).

- **Gaussian mixture**: two components with unknown means, one-hot assignments of six points
  (mixed discrete and continuous latents); exact by integration over a grid of the two means.
- **Sparse Bernoulli features**: ``z_j ~ Bernoulli(0.3)``, ``y ~ Normal(Σ_j w_j z_j, σ)``, three
  features; exact by enumeration of the 8 configurations. Its likelihood is quadratic in ``z``.
- **Two-state HMM** of length 6 with Gaussian emissions; exact by enumeration of the 64 chains.
"""

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit, logsumexp
from scipy.stats import norm

__all__ = [
    "FEATURE_DATA",
    "FEATURE_PRIOR",
    "FEATURE_SCALE",
    "FEATURE_WEIGHTS",
    "HMM_DATA",
    "HMM_INITIAL",
    "HMM_MEANS",
    "HMM_SCALE",
    "HMM_TRANSITION",
    "MIXTURE_DATA",
    "MIXTURE_MARGINAL_BOUND",
    "MIXTURE_MEAN_BOUND",
    "MIXTURE_PRIOR_LOC",
    "MIXTURE_PRIOR_SCALE",
    "MIXTURE_SCALE",
    "MIXTURE_WEIGHTS",
    "binary_mean_field_optimum",
    "feature_exact_elbo",
    "feature_log_joint",
    "feature_mean_field_optimum",
    "feature_posterior_marginals",
    "hmm_chain_marginals",
    "hmm_log_joint",
    "hmm_mean_field_optimum",
    "hmm_posterior_marginals",
    "mixture_exact_posterior",
    "mixture_gaps",
]

# Gaussian mixture ------------------------------------------------------------------------------
MIXTURE_DATA = np.array([-2.1, -1.7, -2.4, 1.9, 2.3, 1.6])
MIXTURE_WEIGHTS = np.array([0.4, 0.6])
# An informative prior on the means: the label-switched mode is e^-16 less probable, so the
# posterior is unimodal and its mean is a meaningful reference.
MIXTURE_PRIOR_LOC = np.array([-2.0, 2.0])
MIXTURE_PRIOR_SCALE = 1.0
MIXTURE_SCALE = 0.5
# How close a fitted mean-field guide is expected to come: the posterior is nearly factorised here
# (well separated clusters), so an unbiased estimator reaches it up to SGD noise. Means within 0.15
# of the exact posterior means, assignment probabilities within 0.05 of the exact marginals.
MIXTURE_MEAN_BOUND = 0.15
MIXTURE_MARGINAL_BOUND = 0.05


def mixture_exact_posterior():
    """``(E[μ | x], P(z_i = k | x))``: the posterior means of the two components and the
    assignment marginals (shape ``(6, 2)``), by integration over a 601 × 601 grid of the means with
    the assignments summed out exactly."""
    grid = np.linspace(-6, 6, 601)
    mu1, mu2 = np.meshgrid(grid, grid, indexing="ij")
    means = np.stack([mu1, mu2], -1)
    log_prior = norm.logpdf(means, MIXTURE_PRIOR_LOC, MIXTURE_PRIOR_SCALE).sum(-1)
    log_components = np.log(MIXTURE_WEIGHTS) + norm.logpdf(
        MIXTURE_DATA[:, None, None, None], means[None], MIXTURE_SCALE
    )
    log_joint = log_prior + logsumexp(log_components, axis=-1).sum(0)
    weights = np.exp(log_joint - log_joint.max())
    weights /= weights.sum()
    posterior_means = (weights[..., None] * means).sum((0, 1))
    assignment = np.exp(log_components - logsumexp(log_components, axis=-1, keepdims=True))
    marginals = (weights[None, ..., None] * assignment).sum((1, 2))
    return posterior_means, marginals


def mixture_gaps(means_loc, assignment_probs):
    """The largest gaps ``(means, marginals)`` between a fitted guide (its means' location and its
    assignment probabilities, shape ``(6, 2)``) and the exact posterior."""
    exact_means, exact_marginals = mixture_exact_posterior()
    mean_gap = float(np.abs(np.asarray(means_loc) - exact_means).max())
    return mean_gap, float(np.abs(np.asarray(assignment_probs) - exact_marginals).max())


# Sparse Bernoulli features ---------------------------------------------------------------------
FEATURE_PRIOR = 0.3
FEATURE_WEIGHTS = np.array([1.0, -0.7, 0.5])
FEATURE_DATA = 0.9
FEATURE_SCALE = 0.5


def _configurations(size):
    """The ``2**size`` binary configurations, in ``np.ndindex`` order."""
    return np.array(list(np.ndindex(*(2,) * size)), dtype=float)


def feature_log_joint():
    """``log p(z, y)`` of the feature model for each of the 8 configurations (``np.ndindex`` order)."""
    configurations = _configurations(len(FEATURE_WEIGHTS))
    log_prior = (configurations * np.log(FEATURE_PRIOR) + (1 - configurations) * np.log(1 - FEATURE_PRIOR)).sum(-1)
    return log_prior + norm.logpdf(FEATURE_DATA, configurations @ FEATURE_WEIGHTS, FEATURE_SCALE)


def feature_posterior_marginals():
    """``P(z_j = 1 | y)`` by enumeration: what a mean-field guide cannot reach, the posterior being
    correlated."""
    log_joint = feature_log_joint()
    weights = np.exp(log_joint - log_joint.max())
    return (weights[:, None] * _configurations(len(FEATURE_WEIGHTS))).sum(0) / weights.sum()


def feature_exact_elbo(probs):
    """The exact ELBO of the mean-field guide ``q(z) = Π_j Bernoulli(probs_j)``, by enumeration."""
    configurations = _configurations(len(FEATURE_WEIGHTS))
    log_q = np.log(np.where(configurations == 1, probs, 1 - probs)).sum(-1)
    return float(np.sum(np.exp(log_q) * (feature_log_joint() - log_q)))


def binary_mean_field_optimum(log_joint):
    """The mean-field guide ``q(z) = Π_j Bernoulli(σ(θ_j))`` over binary ``z_1..z_m`` maximising
    the exact ELBO, given the log-joint of each of the ``2**m`` configurations (``np.ndindex``
    order): ``(P(z_j = 1), best ELBO)``, the best of Nelder-Mead runs from a grid of starts."""
    size = int(round(np.log2(len(log_joint))))
    configurations = _configurations(size)

    def negative_elbo(theta):
        log_q = (configurations * log_expit(theta) + (1 - configurations) * log_expit(-theta)).sum(-1)
        return -np.sum(np.exp(log_q) * (log_joint - log_q))

    generator = np.random.default_rng(0)
    starts = [np.full(size, value) for value in (-2.0, 0.0, 2.0)] + [generator.normal(0, 2, size) for _ in range(6)]
    options = {"xatol": 1e-10, "fatol": 1e-14, "maxiter": 40000}
    best = min(
        (optimize.minimize(negative_elbo, start, method="Nelder-Mead", options=options) for start in starts),
        key=lambda result: result.fun,
    )
    return expit(best.x), -best.fun


def feature_mean_field_optimum():
    """``P(z_j = 1)`` of the mean-field guide maximising the exact ELBO of the feature model (the
    posterior is correlated, so these are not the posterior marginals)."""
    return binary_mean_field_optimum(feature_log_joint())[0]


# Two-state HMM ---------------------------------------------------------------------------------
HMM_INITIAL = np.array([0.5, 0.5])
HMM_TRANSITION = np.array([[0.8, 0.2], [0.3, 0.7]])
HMM_MEANS = np.array([-1.0, 1.0])
HMM_SCALE = 0.7
HMM_DATA = np.array([-1.2, -0.4, 0.3, 1.4, 0.9, -0.2])


def hmm_log_joint():
    """``log p(z, x)`` for each of the 64 state sequences (``np.ndindex`` order; state 1 is ``z = 1``)."""
    chains = np.array(list(np.ndindex(*(2,) * len(HMM_DATA))))
    log_joint = np.log(HMM_INITIAL[chains[:, 0]])
    log_joint += np.log(HMM_TRANSITION[chains[:, :-1], chains[:, 1:]]).sum(-1)
    log_joint += norm.logpdf(HMM_DATA, HMM_MEANS[chains], HMM_SCALE).sum(-1)
    return log_joint


def hmm_posterior_marginals():
    """``P(z_t = 1 | x)`` by enumeration of the 64 chains."""
    log_joint = hmm_log_joint()
    weights = np.exp(log_joint - log_joint.max())
    return (weights[:, None] * _configurations(len(HMM_DATA))).sum(0) / weights.sum()


def hmm_mean_field_optimum():
    """``P(z_t = 1)`` of the mean-field guide maximising the exact ELBO of the HMM."""
    return binary_mean_field_optimum(hmm_log_joint())[0]


def hmm_chain_marginals(initial_logits, transition_logits):
    """``q(z_t = 1)`` of a Markov-chain guide ``q(z_0) q(z_1 | z_0) ...`` with logits
    ``initial_logits`` (shape ``(2,)``) and ``transition_logits`` (shape ``(T - 1, 2, 2)``, row
    ``i`` the logits of ``z_t`` given ``z_{t-1} = i``), by the forward recursion."""

    def softmax(logits):
        logits = np.asarray(logits, np.float64)
        return np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))

    marginal = softmax(initial_logits)
    marginals = [marginal[1]]
    for transition in softmax(transition_logits):
        marginal = marginal @ transition
        marginals.append(marginal[1])
    return np.array(marginals)
