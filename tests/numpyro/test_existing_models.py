"""Existing models written with NumPyro's own distributions (or ours for one-hot sites, which
NumPyro lacks), relaxed by one line and fitted with AutoRelaxed: against exact enumeration, and
against REINFORCE (TraceGraph_ELBO)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")
ESTIMATORS = {"reinmax": numpyro_redge.ReinMax(), "straight_through": numpyro_redge.StraightThrough(), "gumbel_softmax": numpyro_redge.GumbelSoftmax(), "redge": numpyro_redge.ReDGE(), "redge_rein": numpyro_redge.ReDGE(variant="rein")}
# No estimator is exactly unbiased on the HMM (see tests/pyro/test_existing_models.py); ReinMax's
# measured gap is reported and bounded by 0.15 against regressions.
HMM_BOUND = {"reinmax": 0.15}


def hmm_model(estimator):
    def model():
        transition, means = jnp.asarray(cases.HMM_TRANSITION), jnp.asarray(cases.HMM_MEANS)
        z = numpyro.sample("z_0", numpyro_redge.OneHotCategorical(probs=jnp.asarray(cases.HMM_INITIAL), estimator=estimator))
        for t, x in enumerate(cases.HMM_DATA):
            if t:
                z = numpyro.sample(f"z_{t}", numpyro_redge.OneHotCategorical(probs=z @ transition, estimator=estimator))
            numpyro.sample(f"x_{t}", host.Normal((z * means).sum(-1), cases.HMM_SCALE), obs=x)

    return model


@pytest.mark.parametrize("estimator_id", list(ESTIMATORS))
def test_hidden_markov_chain_against_enumeration(estimator_id, report):
    estimator = ESTIMATORS[estimator_id]
    model = numpyro_redge.relax(hmm_model(estimator), estimator)
    guide = numpyro_redge.AutoRelaxed(model, estimator)
    steps = 400
    svi = SVI(model, guide, optax.adam(optax.exponential_decay(0.05, steps, 0.01)), Trace_ELBO(num_particles=16))
    params = svi.run(jax.random.PRNGKey(0), steps, progress_bar=False).params
    fitted = np.array([float(jax.nn.softmax(params[f"auto_z_{t}_relaxed"])[1]) for t in range(len(cases.HMM_DATA))])
    optimum, _ = cases.binary_mean_field_optimum(cases.hmm_log_joint())
    gap = abs(fitted - optimum).max()
    report(
        f"numpyro HMM(6) AutoRelaxed {estimator_id:16s}: max gap to the mean-field optimum {gap:.4f}, "
        f"to the exact marginals {abs(fitted - cases.hmm_posterior_marginals()).max():.4f}"
    )
    assert gap < HMM_BOUND.get(estimator_id, 1.0)


def test_relaxed_gradients_reach_the_elbo_in_fewer_steps_than_reinforce(report):
    weights = jnp.asarray(cases.FEATURE_WEIGHTS)
    _, best_elbo = cases.binary_mean_field_optimum(cases.feature_log_joint())
    configurations = np.array(list(np.ndindex(2, 2, 2)), dtype=float)

    def exact_elbo(probs):
        log_q = np.log(np.where(configurations == 1, probs, 1 - probs)).sum(-1)
        return float(np.sum(np.exp(log_q) * (cases.feature_log_joint() - log_q)))

    def model():
        with numpyro.plate("features", 3):
            z = numpyro.sample("z", host.Bernoulli(probs=cases.FEATURE_PRIOR))
        numpyro.sample("y", host.Normal(z @ weights, cases.FEATURE_SCALE), obs=cases.FEATURE_DATA)

    def guide_of(distribution):
        def guide():
            logits = numpyro.param("logits", jnp.zeros(3))
            with numpyro.plate("features", 3):
                numpyro.sample("z", distribution(logits))

        return guide

    def steps_to_converge(model, guide, elbo, limit=3000):
        svi = SVI(model, guide, optax.adam(0.02), elbo)
        state = svi.init(jax.random.PRNGKey(0))
        update = jax.jit(svi.update)
        for step in range(1, limit + 1):
            state, _ = update(state)
            if step % 10 == 0 and best_elbo - exact_elbo(np.asarray(jax.nn.sigmoid(svi.get_params(state)["logits"]))) < 0.05:
                return step
        return limit

    relaxed = steps_to_converge(
        numpyro_redge.relax(model, numpyro_redge.ReinMax()),
        guide_of(lambda logits: numpyro_redge.Bernoulli(logits=logits, estimator=numpyro_redge.ReinMax())),
        Trace_ELBO(),
    )
    reinforce = steps_to_converge(model, guide_of(lambda logits: host.Bernoulli(logits=logits)), TraceGraph_ELBO())
    report(f"numpyro feature model, steps to within 0.05 nats of the best ELBO: ReinMax {relaxed}, REINFORCE {reinforce} (ratio {reinforce / relaxed:.1f}×)")
    assert relaxed < reinforce


class ScoreFunctionOneHotCategorical(numpyro_redge.OneHotCategorical):
    """Ours without the pathwise gradient, for REINFORCE: NumPyro has no one-hot categorical of its
    own, and TraceGraph_ELBO adds the score term for a distribution without ``has_rsample``."""

    reparametrized_params = []

    def sample(self, key, sample_shape=()):
        return jax.lax.stop_gradient(super().sample(key, sample_shape))


def ours(logits):
    return numpyro_redge.OneHotCategorical(logits=logits, estimator=numpyro_redge.ReinMax())


def reinforce(logits):
    return ScoreFunctionOneHotCategorical(logits=logits)


def mixture_guide(one_hot):
    """A guide written by hand for the mixture: Normal means, a categorical per data point."""
    from numpyro.distributions import constraints

    def guide(data):
        loc = numpyro.param("means_loc", jnp.asarray(cases.MIXTURE_PRIOR_LOC))
        scale = numpyro.param("means_scale", jnp.full(2, 0.3), constraint=constraints.positive)
        numpyro.sample("means", host.Normal(loc, scale).to_event(1))
        logits = numpyro.param("assignment_logits", jnp.zeros((len(data), 2)))
        with numpyro.plate("data", len(data)):
            numpyro.sample("z", one_hot(logits))

    return guide


def mixture_gaps(params):
    exact_means, exact_marginals = cases.mixture_exact_posterior()
    mean_gap = abs(np.asarray(params["means_loc"]) - exact_means).max()
    return mean_gap, abs(np.asarray(jax.nn.softmax(params["assignment_logits"], -1)) - exact_marginals).max()


def hmm_guide(one_hot):
    """A Markov-chain guide written by hand for the HMM, q(z_t | z_{t-1})."""

    def guide():
        initial = numpyro.param("initial_logits", jnp.zeros(2))
        transitions = numpyro.param("transition_logits", jnp.zeros((len(cases.HMM_DATA) - 1, 2, 2)))
        z = numpyro.sample("z_0", one_hot(initial))
        for t in range(1, len(cases.HMM_DATA)):
            z = numpyro.sample(f"z_{t}", one_hot(z @ transitions[t - 1]))

    return guide


def hmm_gap(params):
    """The largest gap between the guide's marginals (forward recursion) and the exact ones."""
    marginal = jax.nn.softmax(params["initial_logits"])
    marginals = [float(marginal[1])]
    for t in range(len(cases.HMM_DATA) - 1):
        marginal = marginal @ jax.nn.softmax(params["transition_logits"][t], -1)
        marginals.append(float(marginal[1]))
    return abs(np.array(marginals) - cases.hmm_posterior_marginals()).max()


def test_hand_written_guides_under_relax_reparam_against_enumeration(report):
    """The mixture and the HMM again, each with a guide written by hand, the model's sites relaxed
    by ``handlers.reparam(..., RelaxReparam(ReinMax()))``; the HMM's guide is a Markov chain
    q(z_t | z_{t-1}) (see tests/pyro/test_existing_models.py)."""
    from numpyro import handlers

    from tests.numpyro.test_autoguide import mixture_model

    estimator = numpyro_redge.ReinMax()
    reparam = numpyro_redge.RelaxReparam(estimator)
    data = jnp.asarray(cases.MIXTURE_DATA)
    steps = 500
    model = handlers.reparam(mixture_model, config={"z": reparam})
    svi = SVI(model, mixture_guide(ours), optax.adam(optax.exponential_decay(0.05, steps, 0.01)), Trace_ELBO(num_particles=8))
    mean_gap, marginal_gap = mixture_gaps(svi.run(jax.random.PRNGKey(0), steps, data, progress_bar=False).params)

    steps = 400
    model = handlers.reparam(hmm_model(estimator), config=lambda msg: reparam if msg["name"].startswith("z_") else None)
    svi = SVI(model, hmm_guide(ours), optax.adam(optax.exponential_decay(0.05, steps, 0.01)), Trace_ELBO(num_particles=16))
    gap = hmm_gap(svi.run(jax.random.PRNGKey(0), steps, progress_bar=False).params)
    report(
        f"numpyro hand-written guides under RelaxReparam(ReinMax): mixture means gap {mean_gap:.4f}, marginal gap {marginal_gap:.4f}; "
        f"HMM(6) Markov guide, max gap to the exact marginals {gap:.4f}"
    )
    assert mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND
    assert gap < HMM_BOUND["reinmax"]
