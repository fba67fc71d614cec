"""Pathwise gradients against REINFORCE on the enumerable models of the tests.

The Gaussian mixture and the two-state HMM of length 6 (tests/cases.py), each with the guide
written by hand in tests/*/test_existing_models.py (Normal means and a categorical per point; a
Markov chain q(z_t | z_{t-1}) for the HMM), are fitted from the same start, one particle per step,
Adam(0.05): by ReinMax through our OneHotCategorical (Trace_ELBO) and by REINFORCE (a score-function
one-hot categorical, TraceGraph_ELBO). Printed: the steps until the fit is within the tests' bounds
of the exact posterior (mixture: means within MIXTURE_MEAN_BOUND and assignment marginals within
MIXTURE_MARGINAL_BOUND; HMM: marginals within 0.1), checked every 10 steps, per seed, in Pyro and
NumPyro, and the median ratio REINFORCE / ReinMax.

    python benchmarks/reinforce_race.py [--quick] [--seeds N]
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests import cases  # noqa: E402

LIMIT = 1500
HMM_REACHED = 0.1


def pyro_race(seed):
    import pyro
    import pyro.distributions as host
    import torch
    from pyro import poutine
    from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    from tests.pyro import test_existing_models as fixtures
    from tests.pyro.test_autoguide import mixture_model

    def steps_to(model, guide, elbo, reached, args=()):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), elbo)
        for step in range(1, LIMIT + 1):
            svi.step(*args)
            if step % 10 == 0 and reached():
                return step
        return LIMIT

    def mixture_reached():
        mean_gap, marginal_gap = fixtures.mixture_gaps()
        return mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND

    def score_function(logits):
        return host.OneHotCategorical(logits=logits)

    data = torch.tensor(cases.MIXTURE_DATA, dtype=torch.float64)
    relaxed_mixture = poutine.reparam(mixture_model, config=fixtures.relaxed_sites("z"))
    relaxed_hmm = poutine.reparam(fixtures.hmm_model, config=fixtures.relaxed_sites("z_"))
    return {
        ("mixture", "ReinMax"): steps_to(relaxed_mixture, fixtures.mixture_guide(fixtures.ours), Trace_ELBO(max_plate_nesting=1), mixture_reached, (data,)),
        ("mixture", "REINFORCE"): steps_to(mixture_model, fixtures.mixture_guide(score_function), TraceGraph_ELBO(max_plate_nesting=1), mixture_reached, (data,)),
        ("hmm", "ReinMax"): steps_to(relaxed_hmm, fixtures.hmm_guide(fixtures.ours), Trace_ELBO(max_plate_nesting=0), lambda: fixtures.hmm_gap() < HMM_REACHED),
        ("hmm", "REINFORCE"): steps_to(fixtures.hmm_model, fixtures.hmm_guide(score_function), TraceGraph_ELBO(max_plate_nesting=0), lambda: fixtures.hmm_gap() < HMM_REACHED),
    }


def numpyro_race(seed):
    import jax
    import jax.numpy as jnp
    import optax
    from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    import numpyro_redge
    from tests.numpyro import test_existing_models as fixtures
    from tests.numpyro.test_autoguide import mixture_model

    def steps_to(model, guide, elbo, reached, args=()):
        svi = SVI(model, guide, optax.adam(0.05), elbo)
        state = svi.init(jax.random.PRNGKey(seed), *args)
        update = jax.jit(svi.update)
        for step in range(1, LIMIT + 1):
            state, _ = update(state, *args)
            if step % 10 == 0 and reached(svi.get_params(state)):
                return step
        return LIMIT

    def mixture_reached(params):
        mean_gap, marginal_gap = fixtures.mixture_gaps(params)
        return mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND

    data = jnp.asarray(cases.MIXTURE_DATA)
    hmm_model = fixtures.hmm_model(numpyro_redge.ReinMax())
    with jax.enable_x64(True):
        return {
            ("mixture", "ReinMax"): steps_to(mixture_model, fixtures.mixture_guide(fixtures.ours), Trace_ELBO(), mixture_reached, (data,)),
            ("mixture", "REINFORCE"): steps_to(mixture_model, fixtures.mixture_guide(fixtures.reinforce), TraceGraph_ELBO(), mixture_reached, (data,)),
            ("hmm", "ReinMax"): steps_to(hmm_model, fixtures.hmm_guide(fixtures.ours), Trace_ELBO(), lambda params: fixtures.hmm_gap(params) < HMM_REACHED),
            ("hmm", "REINFORCE"): steps_to(hmm_model, fixtures.hmm_guide(fixtures.reinforce), TraceGraph_ELBO(), lambda params: fixtures.hmm_gap(params) < HMM_REACHED),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    print(f"steps to the exact posterior (limit {LIMIT}; one particle, Adam 0.05), per seed")
    print(f"{'host':8s} {'model':8s} {'ReinMax':>20s} {'REINFORCE':>20s} {'median ratio':>13s}")
    for host_name, race in [("Pyro", pyro_race), ("NumPyro", numpyro_race)]:
        runs = [race(seed) for seed in seeds]
        for model in ("mixture", "hmm"):
            ours = [run[(model, "ReinMax")] for run in runs]
            theirs = [run[(model, "REINFORCE")] for run in runs]
            ratio = np.median(np.array(theirs) / np.array(ours))
            print(f"{host_name:8s} {model:8s} {str(ours):>20s} {str(theirs):>20s} {ratio:13.2f}")


if __name__ == "__main__":
    main()
