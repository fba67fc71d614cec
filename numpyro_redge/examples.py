"""The small enumerable models of :mod:`redge_core.examples`, written as an existing NumPyro user
would (with NumPyro's own distributions; one-hot sites with ours, NumPyro having no one-hot
categorical), and guides written by hand for them.

Relax a model's discrete sites in one line and fit it with SVI::

    model = numpyro_redge.relax(feature_model, ReinMax())
    guide = feature_guide(lambda logits: numpyro_redge.Bernoulli(logits=logits, estimator=ReinMax()))
    svi = SVI(model, guide, optax.adam(0.02), Trace_ELBO())

The hand-written guides take the distribution of their discrete sites as an argument (a function
of the logits), so the same guide runs with pathwise gradients (one of ours, under ``Trace_ELBO``)
or by REINFORCE (:func:`score_function_one_hot`, under ``TraceGraph_ELBO``). Their parameters are
named as :func:`redge_core.examples.mixture_gaps` and :func:`redge_core.examples.hmm_chain_marginals`
expect them: ``means_loc``, ``means_scale``, ``assignment_logits``; ``initial_logits``,
``transition_logits``; ``logits`` for the feature model. Arrays take JAX's default float type
(enable x64 for the float64 of the Pyro twins).
"""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as host
from numpyro.distributions import constraints

from numpyro_redge.distributions import OneHotCategorical
from redge_core import examples

__all__ = [
    "feature_guide",
    "feature_model",
    "hmm_guide",
    "hmm_model",
    "mixture_guide",
    "mixture_model",
    "score_function_one_hot",
]


def mixture_model(data):
    """The Gaussian mixture: two means ``~ Normal(MIXTURE_PRIOR_LOC, MIXTURE_PRIOR_SCALE)``, and
    for each point a one-hot assignment ``z`` (our :class:`~numpyro_redge.OneHotCategorical`) and
    ``x ~ Normal(z · means, MIXTURE_SCALE)``."""
    means = numpyro.sample(
        "means", host.Normal(jnp.asarray(examples.MIXTURE_PRIOR_LOC), examples.MIXTURE_PRIOR_SCALE).to_event(1)
    )
    with numpyro.plate("data", len(data)):
        z = numpyro.sample("z", OneHotCategorical(probs=jnp.asarray(examples.MIXTURE_WEIGHTS)))
        numpyro.sample("x", host.Normal((z * means).sum(-1), examples.MIXTURE_SCALE), obs=data)


def mixture_guide(one_hot):
    """A guide for :func:`mixture_model` written by hand: ``Normal`` means (``means_loc``,
    ``means_scale``) and an assignment per point drawn from ``one_hot(assignment_logits)``."""

    def guide(data):
        loc = numpyro.param("means_loc", jnp.asarray(examples.MIXTURE_PRIOR_LOC))
        scale = numpyro.param("means_scale", jnp.full(2, 0.3), constraint=constraints.positive)
        numpyro.sample("means", host.Normal(loc, scale).to_event(1))
        logits = numpyro.param("assignment_logits", jnp.zeros((len(data), 2)))
        with numpyro.plate("data", len(data)):
            numpyro.sample("z", one_hot(logits))

    return guide


def feature_model():
    """The sparse Bernoulli features: ``z_j ~ Bernoulli(FEATURE_PRIOR)`` in a plate of 3 (NumPyro's
    ``Bernoulli``) and ``y ~ Normal(Σ_j w_j z_j, FEATURE_SCALE)``."""
    weights = jnp.asarray(examples.FEATURE_WEIGHTS)
    with numpyro.plate("features", len(weights)):
        z = numpyro.sample("z", host.Bernoulli(probs=examples.FEATURE_PRIOR))
    numpyro.sample("y", host.Normal(z @ weights, examples.FEATURE_SCALE), obs=examples.FEATURE_DATA)


def feature_guide(bernoulli):
    """A mean-field guide for :func:`feature_model`: ``z ~ bernoulli(logits)`` in the same plate,
    with learnable ``logits`` starting at 0."""

    def guide():
        logits = numpyro.param("logits", jnp.zeros(len(examples.FEATURE_WEIGHTS)))
        with numpyro.plate("features", len(examples.FEATURE_WEIGHTS)):
            numpyro.sample("z", bernoulli(logits))

    return guide


def hmm_model():
    """The two-state HMM of length 6: ``z_0 ~ OneHotCategorical(HMM_INITIAL)``,
    ``z_t ~ OneHotCategorical(z_{t-1} @ HMM_TRANSITION)`` (ours), ``x_t ~ Normal(z_t · HMM_MEANS,
    HMM_SCALE)``; sites ``z_0..z_5`` and ``x_0..x_5``."""
    transition, means = jnp.asarray(examples.HMM_TRANSITION), jnp.asarray(examples.HMM_MEANS)
    z = numpyro.sample("z_0", OneHotCategorical(probs=jnp.asarray(examples.HMM_INITIAL)))
    for t, x in enumerate(examples.HMM_DATA):
        if t:
            z = numpyro.sample(f"z_{t}", OneHotCategorical(probs=z @ transition))
        numpyro.sample(f"x_{t}", host.Normal((z * means).sum(-1), examples.HMM_SCALE), obs=x)


def hmm_guide(one_hot):
    """A Markov-chain guide for :func:`hmm_model` written by hand, ``q(z_t | z_{t-1})``: ``z_0`` from
    ``one_hot(initial_logits)``, ``z_t`` from ``one_hot(z_{t-1} @ transition_logits[t - 1])``. Unlike
    a mean-field guide, its marginals can reach the exact posterior ones."""

    def guide():
        initial = numpyro.param("initial_logits", jnp.zeros(2))
        transitions = numpyro.param("transition_logits", jnp.zeros((len(examples.HMM_DATA) - 1, 2, 2)))
        z = numpyro.sample("z_0", one_hot(initial))
        for t in range(1, len(examples.HMM_DATA)):
            z = numpyro.sample(f"z_{t}", one_hot(z @ transitions[t - 1]))

    return guide


class _ScoreFunctionOneHotCategorical(OneHotCategorical):
    """Our one-hot categorical without its pathwise gradient, for REINFORCE: NumPyro has no one-hot
    categorical of its own, and ``TraceGraph_ELBO`` adds the score term for a distribution whose
    parameters are not reparametrized."""

    reparametrized_params = []

    def sample(self, key, sample_shape=()):
        return jax.lax.stop_gradient(super().sample(key, sample_shape))


def score_function_one_hot(logits):
    """A one-hot categorical without a pathwise gradient, for REINFORCE (``TraceGraph_ELBO``)."""
    return _ScoreFunctionOneHotCategorical(logits=logits)
