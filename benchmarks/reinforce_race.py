"""Pathwise gradients against REINFORCE on the enumerable example models.

The Gaussian mixture and the two-state HMM of length 6 (:mod:`redge_core.examples`), each with
the guide written by hand in ``pyro_redge.examples`` / ``numpyro_redge.examples`` (Normal means
and a categorical per point; a Markov chain q(z_t | z_{t-1}) for the HMM), are fitted from the
same start, one particle per step, Adam(0.05): by ReinMax through our OneHotCategorical
(Trace_ELBO) and by REINFORCE (a score-function one-hot categorical, TraceGraph_ELBO). Printed:
the steps until the fit is within the tests' bounds of the exact posterior (mixture: means within
MIXTURE_MEAN_BOUND and assignment marginals within MIXTURE_MARGINAL_BOUND; HMM: marginals within
0.1), checked every 10 steps, per seed, in each host asked for, and the median ratio
REINFORCE / ReinMax.

    python benchmarks/reinforce_race.py [--quick] [--seeds N] [--hosts pyro numpyro]
"""

import argparse

import numpy as np

from redge_core import examples

LIMIT = 1500
HMM_REACHED = 0.1


def mixture_reached(means_loc, assignment_probs):
    mean_gap, marginal_gap = examples.mixture_gaps(means_loc, assignment_probs)
    return mean_gap < examples.MIXTURE_MEAN_BOUND and marginal_gap < examples.MIXTURE_MARGINAL_BOUND


def hmm_reached(initial_logits, transition_logits):
    marginals = examples.hmm_chain_marginals(initial_logits, transition_logits)
    return np.abs(marginals - examples.hmm_posterior_marginals()).max() < HMM_REACHED


def pyro_race(seed):
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    import pyro_redge
    from pyro_redge import examples as models

    def steps_to(model, guide, elbo, reached, args=()):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), elbo)
        for step in range(1, LIMIT + 1):
            svi.step(*args)
            if step % 10 == 0 and reached():
                return step
        return LIMIT

    def param(name):
        return pyro.param(name).detach().cpu().numpy()

    def ours(logits):
        return pyro_redge.OneHotCategorical(logits=logits, estimator=pyro_redge.ReinMax())

    def mixture_done():
        return mixture_reached(
            param("means_loc"), torch.softmax(pyro.param("assignment_logits"), -1).detach().cpu().numpy()
        )

    def hmm_done():
        return hmm_reached(param("initial_logits"), param("transition_logits"))

    data = torch.tensor(examples.MIXTURE_DATA, dtype=torch.float64)
    # Our sites in the model: the host's one-hot sites relaxed in one line.
    relaxed_mixture = pyro_redge.relax(models.mixture_model, pyro_redge.ReinMax())
    relaxed_hmm = pyro_redge.relax(models.hmm_model, pyro_redge.ReinMax())
    reinforce = models.score_function_one_hot
    return {
        ("mixture", "ReinMax"): steps_to(
            relaxed_mixture, models.mixture_guide(ours), Trace_ELBO(max_plate_nesting=1), mixture_done, (data,)
        ),
        ("mixture", "REINFORCE"): steps_to(
            models.mixture_model,
            models.mixture_guide(reinforce),
            TraceGraph_ELBO(max_plate_nesting=1),
            mixture_done,
            (data,),
        ),
        ("hmm", "ReinMax"): steps_to(relaxed_hmm, models.hmm_guide(ours), Trace_ELBO(max_plate_nesting=0), hmm_done),
        ("hmm", "REINFORCE"): steps_to(
            models.hmm_model, models.hmm_guide(reinforce), TraceGraph_ELBO(max_plate_nesting=0), hmm_done
        ),
    }


def numpyro_race(seed):
    import jax
    import jax.numpy as jnp
    import optax
    from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    import numpyro_redge
    from numpyro_redge import examples as models

    def steps_to(model, guide, elbo, reached, args=()):
        svi = SVI(model, guide, optax.adam(0.05), elbo)
        state = svi.init(jax.random.PRNGKey(seed), *args)
        update = jax.jit(svi.update)
        for step in range(1, LIMIT + 1):
            state, _ = update(state, *args)
            if step % 10 == 0 and reached(svi.get_params(state)):
                return step
        return LIMIT

    def ours(logits):
        return numpyro_redge.OneHotCategorical(logits=logits, estimator=numpyro_redge.ReinMax())

    def mixture_done(params):
        return mixture_reached(
            np.asarray(params["means_loc"]), np.asarray(jax.nn.softmax(params["assignment_logits"], -1))
        )

    def hmm_done(params):
        return hmm_reached(np.asarray(params["initial_logits"]), np.asarray(params["transition_logits"]))

    reinforce = models.score_function_one_hot
    # The example models' one-hot sites are already ours (NumPyro has no one-hot categorical);
    # relax() leaves them as they are and would relax any host discrete site.
    mixture_model = numpyro_redge.relax(models.mixture_model, numpyro_redge.ReinMax())
    hmm_model = numpyro_redge.relax(models.hmm_model, numpyro_redge.ReinMax())
    # float64, as the Pyro twins; restored on exit.
    with jax.enable_x64(True):
        data = jnp.asarray(examples.MIXTURE_DATA)
        return {
            ("mixture", "ReinMax"): steps_to(
                mixture_model, models.mixture_guide(ours), Trace_ELBO(), mixture_done, (data,)
            ),
            ("mixture", "REINFORCE"): steps_to(
                mixture_model, models.mixture_guide(reinforce), TraceGraph_ELBO(), mixture_done, (data,)
            ),
            ("hmm", "ReinMax"): steps_to(hmm_model, models.hmm_guide(ours), Trace_ELBO(), hmm_done),
            ("hmm", "REINFORCE"): steps_to(hmm_model, models.hmm_guide(reinforce), TraceGraph_ELBO(), hmm_done),
        }


RACES = {"pyro": ("Pyro", pyro_race), "numpyro": ("NumPyro", numpyro_race)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--hosts", nargs="+", choices=list(RACES), default=list(RACES), help="the hosts to race in (default: both)"
    )
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    print(f"steps to the exact posterior (limit {LIMIT}; one particle, Adam 0.05), per seed")
    print(f"{'host':8s} {'model':8s} {'ReinMax':>20s} {'REINFORCE':>20s} {'median ratio':>13s}")
    for key in args.hosts:
        host_name, race = RACES[key]
        runs = [race(seed) for seed in seeds]
        for model in ("mixture", "hmm"):
            ours = [run[(model, "ReinMax")] for run in runs]
            theirs = [run[(model, "REINFORCE")] for run in runs]
            ratio = np.median(np.array(theirs) / np.array(ours))
            print(f"{host_name:8s} {model:8s} {str(ours):>20s} {str(theirs):>20s} {ratio:13.2f}", flush=True)


if __name__ == "__main__":
    main()
