"""The ``redge`` command: ``redge demo`` fits a small discrete-latent model by SVI in each
installed host and prints the fitted posterior next to the exact one; ``redge bench`` runs the
speed benchmark of a source checkout."""

import argparse
import importlib.util
import pathlib
import runpy
import sys
import time

import numpy as np
from tqdm import tqdm

# A one-site model small enough to enumerate: a categorical prior and a likelihood table.
DEMO_PRIOR = np.array([0.4, 0.3, 0.2, 0.1])
DEMO_LOG_LIKELIHOOD = np.array([-2.0, 0.5, -0.3, 1.0])
DEMO_ESTIMATORS = {
    "ReDGE()": ("ReDGE", {}),
    "ReinMax(1.0)": ("ReinMax", {"temperature": 1.0}),
    "GumbelSoftmax(0.5)": ("GumbelSoftmax", {"temperature": 0.5}),
    "StraightThrough()": ("StraightThrough", {}),
}


def exact_posterior():
    logits = np.log(DEMO_PRIOR) + DEMO_LOG_LIKELIHOOD
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def demo(prior, log_likelihood, estimators, steps=500, particles=32, device="cpu"):
    """Fit ``z ~ OneHotCategorical(prior)``, ``factor(z · log_likelihood)`` with Pyro's
    ``Trace_ELBO`` for each estimator of ``estimators`` ({label: (class name, kwargs)});
    return {label: (fitted probabilities, seconds)}."""
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    import pyro_redge

    pyro.enable_validation(True)
    prior = torch.tensor(prior, dtype=torch.float64, device=device)
    table = torch.tensor(log_likelihood, dtype=torch.float64, device=device)
    results = {}
    for label, (name, kwargs) in estimators.items():
        estimator = getattr(pyro_redge, name)(**kwargs)

        def model():
            z = pyro.sample("z", pyro_redge.OneHotCategorical(probs=prior, estimator=estimator))
            pyro.factor("likelihood", z @ table)

        def guide():
            logits = pyro.param("logits", torch.zeros_like(prior))
            pyro.sample("z", pyro_redge.OneHotCategorical(logits=logits, estimator=estimator))

        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        optimizer = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)})
        elbo = Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=0)
        svi = SVI(model, guide, optimizer, elbo)
        start = time.perf_counter()
        for _ in tqdm(range(steps), desc=f"pyro    {label}", leave=False):
            svi.step()
        seconds = time.perf_counter() - start
        results[label] = (torch.softmax(pyro.param("logits").detach(), -1).cpu().numpy(), seconds)
    return results


def print_results(host, results):
    exact = exact_posterior()
    labels = list(results)
    print(f"\n{host}: posterior of z fitted by SVI (Trace_ELBO) vs the exact posterior (enumeration)")
    print("  z   exact  " + "  ".join(f"{label:>18s}" for label in labels))
    for k, value in enumerate(exact):
        print(f"  {k}  {value:6.4f}  " + "  ".join(f"{results[label][0][k]:18.4f}" for label in labels))
    tv = [0.5 * np.abs(results[label][0] - exact).sum() for label in labels]
    print("  TV to exact " + "  ".join(f"{value:18.4f}" for value in tv))
    print("  seconds     " + "  ".join(f"{results[label][1]:18.2f}" for label in labels))


def _run_demo(args):
    steps = 150 if args.quick else 500
    model = (DEMO_PRIOR, DEMO_LOG_LIKELIHOOD, DEMO_ESTIMATORS)
    ran = False
    if importlib.util.find_spec("pyro") is not None:
        print_results("Pyro", demo(*model, steps=steps, device=args.device))
        ran = True
    if importlib.util.find_spec("numpyro") is not None:
        from numpyro_redge.cli import demo as numpyro_demo

        print_results("NumPyro", numpyro_demo(*model, steps=steps))
        ran = True
    if not ran:
        sys.exit("redge demo needs Pyro or NumPyro: pip install 'pyro-redge[all]'")


def _run_bench(args):
    folder = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
    if not (folder / "estimator_speed.py").exists():
        sys.exit("redge bench runs the scripts in benchmarks/ of a source checkout (pip install -e .)")
    for name, extra in [("estimator_speed.py", ["--device", args.device]), ("count_scaling.py", [])]:
        print(f"\n== benchmarks/{name}")
        sys.argv = [str(folder / name)] + (["--quick"] if args.quick else []) + extra
        runpy.run_path(str(folder / name), run_name="__main__")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="redge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("demo", "fit a small discrete-latent model by SVI in Pyro and NumPyro"),
        ("bench", "estimator speed and memory vs the reference packages"),
    ]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--quick", action="store_true", help="a short run")
        command.add_argument("--device", default="cpu", help="cpu or cuda (PyTorch side)")
    args = parser.parse_args(argv)
    {"demo": _run_demo, "bench": _run_bench}[args.command](args)


if __name__ == "__main__":
    main()
