"""Existing models written with Pyro's own distributions, relaxed by one line and fitted with
AutoRelaxed: against exact enumeration, and against REINFORCE (TraceGraph_ELBO)."""

import numpy as np
import pyro
import pyro.distributions as host
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

import pyro_redge
from tests import cases

ESTIMATORS = {"reinmax": pyro_redge.ReinMax(), "straight_through": pyro_redge.StraightThrough(), "gumbel_softmax": pyro_redge.GumbelSoftmax(), "redge": pyro_redge.ReDGE(), "redge_rein": pyro_redge.ReDGE(variant="rein")}
# The HMM's transition log-probability log((z_{t-1} T)_k) is not quadratic in the relaxed values,
# so no estimator is exactly unbiased here: every gap is reported. ReinMax's measured gap to the
# mean-field optimum is 0.05–0.07 (seed 0, 400 steps, both hosts); the bound 0.15 guards against a
# regression.
HMM_BOUND = {"reinmax": 0.15}


def hmm_model():
    dtype = torch.float64
    transition, means = torch.tensor(cases.HMM_TRANSITION, dtype=dtype), torch.tensor(cases.HMM_MEANS, dtype=dtype)
    z = pyro.sample("z_0", host.OneHotCategorical(probs=torch.tensor(cases.HMM_INITIAL, dtype=dtype)))
    for t, x in enumerate(cases.HMM_DATA):
        if t:
            z = pyro.sample(f"z_{t}", host.OneHotCategorical(probs=z @ transition))
        pyro.sample(f"x_{t}", host.Normal((z * means).sum(-1), cases.HMM_SCALE), obs=torch.tensor(x, dtype=dtype))


@pytest.mark.parametrize("estimator_id", list(ESTIMATORS))
def test_hidden_markov_chain_against_enumeration(estimator_id, report):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    estimator = ESTIMATORS[estimator_id]
    model = pyro_redge.relax(hmm_model, estimator)
    guide = pyro_redge.AutoRelaxed(model, estimator)
    steps = 400
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)}), Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=0))
    for _ in range(steps):
        svi.step()
    fitted = np.array([torch.softmax(pyro.param(f"AutoRelaxed.discrete.z_{t}"), -1)[1].item() for t in range(len(cases.HMM_DATA))])
    optimum, _ = cases.binary_mean_field_optimum(cases.hmm_log_joint())
    gap = abs(fitted - optimum).max()
    report(
        f"pyro HMM(6) AutoRelaxed {estimator_id:16s}: max gap to the mean-field optimum {gap:.4f}, "
        f"to the exact marginals {abs(fitted - cases.hmm_posterior_marginals()).max():.4f}"
    )
    assert gap < HMM_BOUND.get(estimator_id, 1.0)


def _exact_feature_elbo(probs):
    configurations = np.array(list(np.ndindex(2, 2, 2)), dtype=float)
    log_q = np.log(np.where(configurations == 1, probs, 1 - probs)).sum(-1)
    return float(np.sum(np.exp(log_q) * (cases.feature_log_joint() - log_q)))


def test_relaxed_gradients_reach_the_elbo_in_fewer_steps_than_reinforce(report):
    """The feature model fitted from the same start by our pathwise gradients (AutoRelaxed,
    ReinMax) and by REINFORCE (TraceGraph_ELBO with a host Bernoulli guide), one particle each, the
    same optimiser: the number of steps until the exact ELBO of the guide is within 0.05 nats of
    the mean-field optimum."""
    weights = torch.tensor(cases.FEATURE_WEIGHTS, dtype=torch.float64)
    _, best_elbo = cases.binary_mean_field_optimum(cases.feature_log_joint())

    def model():
        with pyro.plate("features", 3):
            z = pyro.sample("z", host.Bernoulli(probs=torch.tensor(cases.FEATURE_PRIOR, dtype=torch.float64)))
        pyro.sample("y", host.Normal((z * weights).sum(-1, keepdim=True), cases.FEATURE_SCALE), obs=torch.tensor(cases.FEATURE_DATA, dtype=torch.float64))

    def host_guide():
        logits = pyro.param("logits", torch.zeros(3, dtype=torch.float64))
        with pyro.plate("features", 3):
            pyro.sample("z", host.Bernoulli(logits=logits))

    def ours_guide():
        logits = pyro.param("logits", torch.zeros(3, dtype=torch.float64))
        with pyro.plate("features", 3):
            pyro.sample("z", pyro_redge.Bernoulli(logits=logits, estimator=pyro_redge.ReinMax()))

    def steps_to_converge(model, guide, elbo, limit=3000):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), elbo)
        for step in range(1, limit + 1):
            svi.step()
            if step % 10 == 0 and best_elbo - _exact_feature_elbo(torch.sigmoid(pyro.param("logits")).detach().numpy()) < 0.05:
                return step
        return limit

    relaxed = steps_to_converge(pyro_redge.relax(model, pyro_redge.ReinMax()), ours_guide, Trace_ELBO(max_plate_nesting=1))
    reinforce = steps_to_converge(model, host_guide, TraceGraph_ELBO(max_plate_nesting=1))
    report(f"pyro feature model, steps to within 0.05 nats of the best ELBO: ReinMax {relaxed}, REINFORCE {reinforce} (ratio {reinforce / relaxed:.1f}×)")
    assert relaxed < reinforce


def mixture_guide(one_hot):
    """A guide written by hand for the mixture: Normal means, a categorical per data point drawn
    from ``one_hot(logits)`` (ours for pathwise gradients, Pyro's for REINFORCE)."""

    def guide(data):
        loc = pyro.param("means_loc", torch.tensor(cases.MIXTURE_PRIOR_LOC, dtype=torch.float64))
        scale = pyro.param("means_scale", torch.full((2,), 0.3, dtype=torch.float64), constraint=host.constraints.positive)
        pyro.sample("means", host.Normal(loc, scale).to_event(1))
        logits = pyro.param("assignment_logits", torch.zeros(len(data), 2, dtype=torch.float64))
        with pyro.plate("data", len(data)):
            pyro.sample("z", one_hot(logits))

    return guide


def mixture_gaps():
    exact_means, exact_marginals = cases.mixture_exact_posterior()
    mean_gap = abs(pyro.param("means_loc").detach().numpy() - exact_means).max()
    return mean_gap, abs(torch.softmax(pyro.param("assignment_logits"), -1).detach().numpy() - exact_marginals).max()


def hmm_guide(one_hot):
    """A Markov-chain guide written by hand for the HMM, q(z_t | z_{t-1})."""

    def guide():
        initial = pyro.param("initial_logits", torch.zeros(2, dtype=torch.float64))
        transitions = pyro.param("transition_logits", torch.zeros(len(cases.HMM_DATA) - 1, 2, 2, dtype=torch.float64))
        z = pyro.sample("z_0", one_hot(initial))
        for t in range(1, len(cases.HMM_DATA)):
            z = pyro.sample(f"z_{t}", one_hot(z @ transitions[t - 1]))

    return guide


def hmm_gap():
    """The largest gap between the guide's marginals (forward recursion) and the exact ones."""
    with torch.no_grad():
        marginal = torch.softmax(pyro.param("initial_logits"), -1)
        marginals = [marginal[1].item()]
        for t in range(len(cases.HMM_DATA) - 1):
            marginal = marginal @ torch.softmax(pyro.param("transition_logits")[t], -1)
            marginals.append(marginal[1].item())
    return abs(np.array(marginals) - cases.hmm_posterior_marginals()).max()


def ours(logits):
    return pyro_redge.OneHotCategorical(logits=logits, estimator=pyro_redge.ReinMax())


def relaxed_sites(name):
    return lambda msg: pyro_redge.RelaxReparam(pyro_redge.ReinMax()) if msg["name"].startswith(name) else None


def test_hand_written_guides_under_relax_reparam_against_enumeration(report):
    """The mixture and the HMM again, each with a guide written by hand, the model's host sites
    relaxed by ``poutine.reparam(..., RelaxReparam(ReinMax()))``; the HMM's guide is a Markov chain
    q(z_t | z_{t-1}), so its marginals can reach the exact ones, not just the mean-field optimum."""
    from pyro import poutine

    from tests.pyro.test_autoguide import mixture_model

    def fit(model, guide, steps, particles, max_plate_nesting, *args):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        optimizer = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)})
        svi = SVI(model, guide, optimizer, Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=max_plate_nesting))
        for _ in range(steps):
            svi.step(*args)

    data = torch.tensor(cases.MIXTURE_DATA, dtype=torch.float64)
    fit(poutine.reparam(mixture_model, config=relaxed_sites("z")), mixture_guide(ours), 500, 8, 1, data)
    mean_gap, marginal_gap = mixture_gaps()
    fit(poutine.reparam(hmm_model, config=relaxed_sites("z_")), hmm_guide(ours), 400, 16, 0)
    gap = hmm_gap()
    report(
        f"pyro hand-written guides under RelaxReparam(ReinMax): mixture means gap {mean_gap:.4f}, marginal gap {marginal_gap:.4f}; "
        f"HMM(6) Markov guide, max gap to the exact marginals {gap:.4f}"
    )
    assert mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND
    assert gap < HMM_BOUND["reinmax"]
