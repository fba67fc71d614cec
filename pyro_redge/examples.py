"""The small enumerable models of :mod:`redge_core.examples`, written as an existing Pyro user
would (with Pyro's own distributions), and guides written by hand for them.

Relax a model's discrete sites in one line and fit it with SVI::

    model = pyro_redge.relax(mixture_model, ReinMax())
    guide = mixture_guide(lambda logits: pyro_redge.OneHotCategorical(logits=logits, estimator=ReinMax()))
    svi = SVI(model, guide, optimizer, Trace_ELBO(max_plate_nesting=1))
    svi.step(torch.tensor(MIXTURE_DATA))

The hand-written guides take the distribution of their discrete sites as an argument (a function
of the logits), so the same guide runs with pathwise gradients (one of ours, under ``Trace_ELBO``)
or by REINFORCE (:func:`score_function_one_hot`, under ``TraceGraph_ELBO``). Their parameters are
named as :func:`redge_core.examples.mixture_gaps` and :func:`redge_core.examples.hmm_chain_marginals`
expect them: ``means_loc``, ``means_scale``, ``assignment_logits``; ``initial_logits``,
``transition_logits``; ``logits`` for the feature model. All arrays are float64.

Every model is broadcasting-safe, so it runs under vectorized particles and ``Predictive``.
"""

import pyro
import pyro.distributions as host
import torch

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


def _tensor(value, like=None):
    dtype, device = (torch.float64, None) if like is None else (like.dtype, like.device)
    return torch.as_tensor(value, dtype=dtype, device=device)


def mixture_model(data):
    """The Gaussian mixture: two means ``~ Normal(MIXTURE_PRIOR_LOC, MIXTURE_PRIOR_SCALE)``, and
    for each point a one-hot assignment ``z`` (Pyro's ``OneHotCategorical``) and
    ``x ~ Normal(z · means, MIXTURE_SCALE)``. Under vectorized particles or ``Predictive``,
    ``means`` carries a singleton at the data plate's dim, so ``(z * means).sum(-1)`` pairs each
    particle's means with its own assignments."""
    loc = _tensor(examples.MIXTURE_PRIOR_LOC, data)
    means = pyro.sample("means", host.Normal(loc, examples.MIXTURE_PRIOR_SCALE).to_event(1))
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", host.OneHotCategorical(probs=_tensor(examples.MIXTURE_WEIGHTS, data)))
        pyro.sample("x", host.Normal((z * means).sum(-1), examples.MIXTURE_SCALE), obs=data)


def mixture_guide(one_hot):
    """A guide for :func:`mixture_model` written by hand: ``Normal`` means (``means_loc``,
    ``means_scale``) and an assignment per point drawn from ``one_hot(assignment_logits)``."""

    def guide(data):
        loc = pyro.param("means_loc", _tensor(examples.MIXTURE_PRIOR_LOC, data))
        scale = pyro.param("means_scale", _tensor([0.3, 0.3], data), constraint=host.constraints.positive)
        pyro.sample("means", host.Normal(loc, scale).to_event(1))
        logits = pyro.param("assignment_logits", torch.zeros(len(data), 2, dtype=data.dtype, device=data.device))
        with pyro.plate("data", len(data)):
            pyro.sample("z", one_hot(logits))

    return guide


def feature_model():
    """The sparse Bernoulli features: ``z_j ~ Bernoulli(FEATURE_PRIOR)`` in a plate of 3 (Pyro's
    ``Bernoulli``) and ``y ~ Normal(Σ_j w_j z_j, FEATURE_SCALE)``."""
    weights = _tensor(examples.FEATURE_WEIGHTS)
    with pyro.plate("features", len(weights)):
        z = pyro.sample("z", host.Bernoulli(probs=_tensor(examples.FEATURE_PRIOR)))
    # keepdim: vectorized particles put their plate at dim -2, left of the features.
    location = (z * weights).sum(-1, keepdim=True)
    pyro.sample("y", host.Normal(location, examples.FEATURE_SCALE), obs=_tensor(examples.FEATURE_DATA))


def feature_guide(bernoulli):
    """A mean-field guide for :func:`feature_model`: ``z ~ bernoulli(logits)`` in the same plate,
    with learnable ``logits`` starting at 0."""

    def guide():
        logits = pyro.param("logits", torch.zeros(len(examples.FEATURE_WEIGHTS), dtype=torch.float64))
        with pyro.plate("features", len(examples.FEATURE_WEIGHTS)):
            pyro.sample("z", bernoulli(logits))

    return guide


def hmm_model():
    """The two-state HMM of length 6: ``z_0 ~ OneHotCategorical(HMM_INITIAL)``,
    ``z_t ~ OneHotCategorical(z_{t-1} @ HMM_TRANSITION)`` (Pyro's), ``x_t ~ Normal(z_t · HMM_MEANS,
    HMM_SCALE)``; sites ``z_0..z_5`` and ``x_0..x_5``."""
    transition, means = _tensor(examples.HMM_TRANSITION), _tensor(examples.HMM_MEANS)
    z = pyro.sample("z_0", host.OneHotCategorical(probs=_tensor(examples.HMM_INITIAL)))
    for t, x in enumerate(examples.HMM_DATA):
        if t:
            z = pyro.sample(f"z_{t}", host.OneHotCategorical(probs=z @ transition))
        pyro.sample(f"x_{t}", host.Normal((z * means).sum(-1), examples.HMM_SCALE), obs=_tensor(x))


def hmm_guide(one_hot):
    """A Markov-chain guide for :func:`hmm_model` written by hand, ``q(z_t | z_{t-1})``: ``z_0`` from
    ``one_hot(initial_logits)``, ``z_t`` from ``one_hot(z_{t-1} @ transition_logits[t - 1])``. Unlike
    a mean-field guide, its marginals can reach the exact posterior ones."""

    def guide():
        initial = pyro.param("initial_logits", torch.zeros(2, dtype=torch.float64))
        transitions = pyro.param(
            "transition_logits", torch.zeros(len(examples.HMM_DATA) - 1, 2, 2, dtype=torch.float64)
        )
        z = pyro.sample("z_0", one_hot(initial))
        for t in range(1, len(examples.HMM_DATA)):
            z = pyro.sample(f"z_{t}", one_hot(z @ transitions[t - 1]))

    return guide


def score_function_one_hot(logits):
    """A one-hot categorical without a pathwise gradient, for REINFORCE (``TraceGraph_ELBO``):
    Pyro's own ``OneHotCategorical``."""
    return host.OneHotCategorical(logits=logits)
