"""Polynomial programming, the ReinMax and ReDGE papers' toy: minimise over the logits of 128
independent bits ``z_i ~ Bernoulli(sigmoid(theta_i))`` the expected loss

    E[ mean_i |z_i - 0.45|^p ],   p in {1.5, 2, 3},

whose optimum is every bit at 0 (loss ``0.45^p``). Each pathwise estimator of both hosts fits the
logits from 0 by Adam on the batch-mean loss of its own hard samples; the expected loss of the
fitted logits is computed exactly (the bits are independent: ``sigmoid(theta) 0.55^p +
(1 - sigmoid(theta)) 0.45^p`` per bit), so the printed gap to the optimum has no Monte-Carlo
error. The gradient of the expected loss per bit is ``(0.55^p - 0.45^p) sigma'(theta)``, of one
sign everywhere; an estimator whose mean gradient keeps that sign converges, one whose bias flips
it stalls short of the optimum (straight-through's mean gradient
``p (sigma 0.55^(p-1) - (1 - sigma) 0.45^(p-1)) sigma'`` vanishes at ``sigma = 0.45`` for p = 2),
so the table measures both speed and bias.
A table per host (gap to the optimum after 100, 300 and 1 000 steps, mean over seeds) and a plot
(``polynomial_programming.png``, gap against steps, log scale) are written.

    python benchmarks/polynomial_programming.py [--quick] [--seeds N] [--hosts pyro numpyro]
"""

import argparse

import numpy as np

from redge_core.reporting import plotting_available

BITS, TARGET, BATCH, LEARNING_RATE = 128, 0.45, 16, 0.01
POWERS = (1.5, 2.0, 3.0)
CHECKPOINTS = (100, 300, 1000)
# (label, estimator class name, keyword arguments): the pathwise estimators that take a Bernoulli.
ESTIMATORS = (
    ("ST", "StraightThrough", {}),
    ("GS 0.5", "GumbelSoftmax", {"temperature": 0.5}),
    ("GumbelRao 0.5", "GumbelRao", {"temperature": 0.5}),
    ("ReinMax", "ReinMax", {}),
    ("ReDGE", "ReDGE", {}),
    ("ReDGE rein", "ReDGE", {"variant": "rein"}),
    ("ExactReDGE", "ExactReDGE", {}),
)


def expected_loss(logits, power):
    """The exact expected loss of independent bits with ``logits`` (NumPy)."""
    on = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return float(np.mean(on * (1 - TARGET) ** power + (1 - on) * TARGET**power))


def pyro_fit(class_name, options, power, seed, steps):
    import torch

    import pyro_redge

    torch.manual_seed(seed)
    logits = torch.zeros(BITS, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=LEARNING_RATE)
    estimator = getattr(pyro_redge, class_name)(**options)
    gaps = {}
    for step in range(1, steps + 1):
        bits = pyro_redge.Bernoulli(logits=logits, estimator=estimator).rsample((BATCH,))
        loss = (bits - TARGET).abs().pow(power).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in CHECKPOINTS:
            gaps[step] = expected_loss(logits.detach().numpy(), power) - TARGET**power
    return gaps


def numpyro_fit(class_name, options, power, seed, steps):
    import jax
    import jax.numpy as jnp
    import optax

    import numpyro_redge

    estimator = getattr(numpyro_redge, class_name)(**options)
    optimizer = optax.adam(LEARNING_RATE)

    def loss(logits, key):
        bits = numpyro_redge.Bernoulli(logits=logits, estimator=estimator).rsample(key, (BATCH,))
        return (jnp.abs(bits - TARGET) ** power).mean()

    @jax.jit
    def update(logits, state, key):
        gradient = jax.grad(loss)(logits, key)
        changes, state = optimizer.update(gradient, state)
        return optax.apply_updates(logits, changes), state

    logits = jnp.zeros(BITS)
    state, key, gaps = optimizer.init(logits), jax.random.PRNGKey(seed), {}
    for step in range(1, steps + 1):
        key, draw = jax.random.split(key)
        logits, state = update(logits, state, draw)
        if step in CHECKPOINTS:
            gaps[step] = expected_loss(np.asarray(logits), power) - TARGET**power
    return gaps


FITS = {"pyro": ("Pyro", pyro_fit), "numpyro": ("NumPyro", numpyro_fit)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 300 steps")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hosts", nargs="+", choices=list(FITS), default=list(FITS))
    parser.add_argument("--plot", default="polynomial_programming.png", help="'' for none")
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    checkpoints = [step for step in CHECKPOINTS if not args.quick or step <= 300]
    print(
        f"{BITS} bits, loss mean |z - {TARGET}|^p, optimum {TARGET}^p; Adam {LEARNING_RATE}, {BATCH} samples per "
        f"step, logits from 0; gap of the exact expected loss to the optimum (mean of {len(seeds)} seeds; "
        f"at the start: {expected_loss(np.zeros(BITS), 2.0) - TARGET**2:.4f} for p = 2)"
    )
    print(f"{'host':8s} {'p':>4s} {'estimator':14s} " + " ".join(f"{f'@{step}':>10s}" for step in checkpoints))
    curves = {}
    for key in args.hosts:
        host_name, fit = FITS[key]
        for power in POWERS:
            for label, class_name, options in ESTIMATORS:
                runs = [fit(class_name, options, power, seed, checkpoints[-1]) for seed in seeds]
                gaps = [float(np.mean([run[step] for run in runs])) for step in checkpoints]
                curves[(host_name, power, label)] = gaps
                row = " ".join(f"{gap:10.2e}" for gap in gaps)
                print(f"{host_name:8s} {power:4.1f} {label:14s} {row}", flush=True)
    if args.plot and not plotting_available():
        print("no plot: matplotlib is not installed (pip install matplotlib)")
    elif args.plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5 * len(POWERS), 4))
        axes = figure.subplots(1, len(POWERS), squeeze=False)[0]
        hosts = list(dict.fromkeys(host for host, _, _ in curves))
        for axis, power in zip(axes, POWERS, strict=True):
            for (host, curve_power, label), gaps in curves.items():
                if curve_power == power:
                    index = [name for name, _, _ in ESTIMATORS].index(label)
                    axis.plot(
                        checkpoints,
                        gaps,
                        marker="o",
                        color=f"C{index}",
                        linestyle=["-", "--"][hosts.index(host) % 2],
                        label=f"{host} {label}",
                    )
            axis.set(title=f"p = {power}", xlabel="steps", ylabel="expected loss - optimum", xscale="log", yscale="log")
            axis.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
