"""Discrete VAEs on binarised digits at equal compute: each estimator of both hosts against
REINFORCE with a leave-one-out baseline (RLOO), given the same number of decoder evaluations.

The ReinMax, ReDGE, AIMLE and generalised-Gumbel-softmax papers' kind of experiment, scaled to two
CPU cores: the 1 797 binarised 8 x 8 digits shipped with the package
(:func:`redge_core.digits.load_digits`), an encoder and a decoder of one hidden layer of 256 ReLU
units, Adam 1e-3, minibatches of 100 images drawn afresh each step, and one of three latent
families (``--latent``):

- ``categorical``: 10 one-hot latents of 10 classes, uniform prior (``OneHotCategorical``);
- ``subset``: a 10-subset of 100 positions, uniform prior (``KSubset``), with IMLE, AIMLE (its
  adaptive state kept between steps) and the exact-marginal straight-through estimator;
- ``poisson``: 16 Poisson counts, prior rate 2, guide rate a softplus of the encoder
  (``Poisson`` with the window ``{0, ..., 30}``: the guide family is the Poisson renormalised
  there, in both hosts).

Each estimator is the host's SVI objective: the pathwise ones put ours (``estimator=...``) in the
guide with ``TraceMeanField_ELBO`` (analytic KL to the prior), one sample per image per step;
RLOO puts ``estimator=RLOO()`` there with our ``ScoreFunction_ELBO`` and S particles, S decoder
evaluations per image per step; DisARM (categorical latents) likewise, its S particles S/2
antithetic pairs. Pyro steps with ``SVI.step``; NumPyro takes the gradient of the
same ELBO's ``loss`` and applies optax's Adam, as ``SVI.update`` does, in a compiled
``lax.scan`` (AIMLE needs the cotangent of its ``beta`` too). A run stops after ``--budget``
decoder evaluations per image (categorical 12 000: RLOO with 4 samples for 3 000 steps, as in
the estimators issue; 4 000 for the others, whose steps cost more), so RLOO with S samples takes
budget / S steps and a single-sample estimator takes budget steps.

Every ``--every`` evaluations the ELBO is measured on all 1 797 images, in nats per image, with 16
exact draws of the guide per image and the analytic KL. Printed per host: the ELBO at a quarter,
half and all of the budget (mean over seeds +- the standard error over seeds), the decoder
evaluations each estimator needs to reach 4-sample RLOO's final ELBO in the same host (the first
checkpoint where the mean over seeds is at least that high; ``-`` if never), the seconds per
1 000 decoder evaluations measured in the run, and the seconds to RLOO's final ELBO they imply.
A plot (``discrete_vae_<latent>.png``, ELBO against decoder evaluations) is written.

    python benchmarks/discrete_vae.py [--latent categorical|subset|poisson] [--quick] [--seeds N]
        [--hosts pyro numpyro] [--budget E] [--every E] [--only LABEL ...]
"""

import argparse
import dataclasses
import time

import numpy as np

from redge_core.digits import load_digits
from redge_core.reporting import plotting_available

HIDDEN, PIXELS, LEARNING_RATE, BATCH, EVALUATION_DRAWS = 256, 64, 1e-3, 100, 16
TARGET_LABEL = "RLOO 4"
RLOO_ROWS = (("RLOO 4", "RLOO", {}, 4), ("RLOO 2", "RLOO", {}, 2))


@dataclasses.dataclass(frozen=True)
class Latent:
    """A latent family: its shape, its decoder input width, its estimators as rows ``(label,
    estimator class name, keyword arguments, decoder evaluations per image per step)``, and how
    each host builds its guide and prior distributions (``guide(host, parameters, estimator,
    beta)``, ``prior(host, batch_shape)``; ``host`` is a :class:`Host`)."""

    description: str
    encoder_outputs: int
    estimators: tuple
    exact_estimator: str
    #: The default decoder evaluations per image per run.
    budget: int = 12_000

    def code(self, value):
        """The decoder input of a latent value (the value's last axes flattened to one)."""
        return value.reshape(value.shape[: value.ndim - self.event_dims] + (-1,))

    event_dims: int = 1


@dataclasses.dataclass(frozen=True)
class Host:
    """What differs between the hosts: the package with our distributions, the host's own
    distributions module, and the array module."""

    redge: object
    distributions: object
    arrays: object
    is_numpyro: bool


CATEGORICAL = Latent(
    "10 one-hot latents x 10 classes, uniform prior",
    100,
    RLOO_ROWS
    + (
        ("DisARM 4", "DisARM", {}, 4),
        ("DisARM 2", "DisARM", {}, 2),
        ("ST", "StraightThrough", {}, 1),
        ("GS 0.5", "GumbelSoftmax", {"temperature": 0.5}, 1),
        ("GumbelRao 0.5", "GumbelRao", {"temperature": 0.5}, 1),
        ("ReinMax", "ReinMax", {}, 1),
        ("ReinMax 1.3", "ReinMax", {"temperature": 1.3}, 1),
        ("ReDGE", "ReDGE", {}, 1),
        ("ReDGE rein", "ReDGE", {"variant": "rein"}, 1),
        ("ExactReDGE", "ExactReDGE", {}, 1),
        ("ExactReDGE rein", "ExactReDGE", {"variant": "rein"}, 1),
    ),
    "StraightThrough",
    event_dims=2,
)
SUBSET = Latent(
    "a 10-subset of 100 positions, uniform prior",
    100,
    RLOO_ROWS
    + (
        ("IMLE", "IMLE", {}, 1),
        ("AIMLE", "AIMLE", {}, 1),
        ("exact marginal", "MarginalStraightThrough", {}, 1),
    ),
    "MarginalStraightThrough",
    budget=4_000,
)
POISSON = Latent(
    "16 Poisson latents (window 0..30), prior rate 2",
    16,
    RLOO_ROWS
    + (
        ("ST", "StraightThrough", {}, 1),
        ("GS 0.5", "GumbelSoftmax", {"temperature": 0.5}, 1),
        ("ReinMax", "ReinMax", {}, 1),
        ("ReDGE rein", "ReDGE", {"variant": "rein"}, 1),
        ("ExactReDGE", "ExactReDGE", {}, 1),
    ),
    "StraightThrough",
    budget=4_000,
)
LATENTS = {"categorical": CATEGORICAL, "subset": SUBSET, "poisson": POISSON}
SUBSET_SIZE, POISSON_WINDOW, PRIOR_RATE = 10, (0, 30), 2.0


def guide_distribution(latent, host, outputs, estimator, beta=None):
    """The guide's distribution of one latent family from the encoder's ``outputs``."""
    redge, arrays = host.redge, host.arrays
    if latent is CATEGORICAL:
        logits = outputs.reshape(outputs.shape[:-1] + (10, 10))
        return redge.OneHotCategorical(logits=logits, estimator=estimator).to_event(1)
    if latent is SUBSET:
        return redge.KSubset(outputs, SUBSET_SIZE, estimator, beta=beta)
    softplus = host.arrays.nn.softplus if host.is_numpyro else arrays.nn.functional.softplus
    return redge.Poisson(softplus(outputs), estimator=estimator, truncation=POISSON_WINDOW).to_event(1)


def prior_distribution(latent, host):
    """The prior of one latent family (unbatched; the plate broadcasts it)."""
    redge, arrays = host.redge, host.arrays
    if latent is CATEGORICAL:
        logits = arrays.zeros((10, 10))
        # NumPyro has no one-hot categorical of its own: there the prior is ours.
        categorical = redge.OneHotCategorical if host.is_numpyro else host.distributions.OneHotCategorical
        return categorical(logits=logits).to_event(1)
    if latent is SUBSET:
        return redge.KSubset(arrays.zeros(100), SUBSET_SIZE)
    return host.distributions.Poisson(arrays.full((latent.encoder_outputs,), PRIOR_RATE)).to_event(1)


def minibatches(seed, steps, num_images):
    """The image indices of each step, shape ``(steps, BATCH)``: the same for every estimator and
    both hosts at a given seed."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(num_images, BATCH, replace=False) for _ in range(steps)])


def initial_weights(latent, seed):
    """Encoder and decoder weights as PyTorch's ``nn.Linear`` draws them (uniform within
    ``1/sqrt(fan_in)``), from one NumPy generator, so both hosts start from the same network."""
    rng = np.random.default_rng(10_000 + seed)
    weights = {}
    for name, sizes in (
        ("encoder", (PIXELS, HIDDEN, latent.encoder_outputs)),
        ("decoder", (latent.encoder_outputs, HIDDEN, PIXELS)),
    ):
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            bound = fan_in**-0.5
            weights[f"{name}_weight{layer}"] = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
            weights[f"{name}_bias{layer}"] = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return weights


def network(relu, weights, name, inputs):
    hidden = relu(inputs @ weights[f"{name}_weight0"] + weights[f"{name}_bias0"])
    return hidden @ weights[f"{name}_weight1"] + weights[f"{name}_bias1"]


def pyro_run(latent, class_name, options, particles, seed, budget, every):
    """ELBO checkpoints ``{decoder evaluations: ELBO}`` and the seconds spent in SVI steps."""
    import torch

    threads = torch.get_num_threads()
    # A fixed thread count, so that the times compare across runs; one, because these matrices are
    # small and a second busy process (NumPyro's run, say) would otherwise oversubscribe the cores.
    torch.set_num_threads(1)
    try:
        return _pyro_run(latent, class_name, options, particles, seed, budget, every)
    finally:
        torch.set_num_threads(threads)


def _pyro_run(latent, class_name, options, particles, seed, budget, every):
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, TraceMeanField_ELBO

    import pyro_redge

    host = Host(pyro_redge, dist, torch, is_numpyro=False)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    images = torch.as_tensor(load_digits()[0])
    initial = {name: torch.as_tensor(value) for name, value in initial_weights(latent, seed).items()}

    def params(prefix):
        return {name: pyro.param(name, value) for name, value in initial.items() if name.startswith(prefix)}

    estimator = getattr(pyro_redge, class_name)(**options)
    adaptive = isinstance(estimator, pyro_redge.AIMLE)

    def model(x, beta=None):
        weights = params("decoder")
        with pyro.plate("images", x.shape[0]):
            value = pyro.sample("latent", prior_distribution(latent, host))
            pixel_logits = network(torch.relu, weights, "decoder", latent.code(value))
            pyro.sample("pixels", dist.Bernoulli(logits=pixel_logits).to_event(1), obs=x)

    def guide(x, beta=None):
        outputs = network(torch.relu, params("encoder"), "encoder", x)
        with pyro.plate("images", x.shape[0]):
            pyro.sample("latent", guide_distribution(latent, host, outputs, estimator, beta))

    if particles > 1:
        elbo = pyro_redge.ScoreFunction_ELBO(num_particles=particles, max_plate_nesting=1)
    else:
        elbo = TraceMeanField_ELBO(max_plate_nesting=1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": LEARNING_RATE}), elbo)
    exact = getattr(pyro_redge, latent.exact_estimator)()

    def evaluate():
        with torch.no_grad():
            weights = {name: pyro.param(name, value) for name, value in initial.items()}
            guide_law = guide_distribution(latent, host, network(torch.relu, weights, "encoder", images), exact)
            draws = guide_law.sample((EVALUATION_DRAWS,))
            pixel_logits = network(torch.relu, weights, "decoder", latent.code(draws))
            likelihood = dist.Bernoulli(logits=pixel_logits).to_event(1).log_prob(images).mean(0)
            kl = torch.distributions.kl_divergence(guide_law, prior_distribution(latent, host))
            return float((likelihood - kl).mean())

    state = estimator.init_state() if adaptive else None
    steps_per_check = every // particles
    checkpoints, seconds, step = {0: evaluate()}, 0.0, 0
    for indices in minibatches(seed, budget // particles, len(images)).reshape(-1, steps_per_check, BATCH):
        start = time.perf_counter()
        for batch in indices:
            if adaptive:
                beta = state.beta.clone().requires_grad_()
                svi.step(images[torch.as_tensor(batch)], beta)
                state = estimator.update_state(state, beta.grad)
            else:
                svi.step(images[torch.as_tensor(batch)])
        seconds += time.perf_counter() - start
        step += steps_per_check
        checkpoints[step * particles] = evaluate()
    return checkpoints, seconds


def numpyro_run(latent, class_name, options, particles, seed, budget, every):
    """ELBO checkpoints ``{decoder evaluations: ELBO}`` and the seconds spent in SVI steps."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    import optax
    from numpyro.infer import TraceMeanField_ELBO

    import numpyro_redge

    host = Host(numpyro_redge, dist, _JaxArrays(jnp, jax.nn), is_numpyro=True)
    images = jnp.asarray(load_digits()[0])
    initial = {name: jnp.asarray(value) for name, value in initial_weights(latent, seed).items()}

    def params(prefix):
        return {name: numpyro.param(name, value) for name, value in initial.items() if name.startswith(prefix)}

    estimator = getattr(numpyro_redge, class_name)(**options)
    adaptive = isinstance(estimator, numpyro_redge.AIMLE)

    def model(x, beta=None):
        weights = params("decoder")
        with numpyro.plate("images", x.shape[0]):
            value = numpyro.sample("latent", prior_distribution(latent, host))
            pixel_logits = network(jax.nn.relu, weights, "decoder", latent.code(value))
            numpyro.sample("pixels", dist.Bernoulli(logits=pixel_logits).to_event(1), obs=x)

    def guide(x, beta=None):
        outputs = network(jax.nn.relu, params("encoder"), "encoder", x)
        with numpyro.plate("images", x.shape[0]):
            numpyro.sample("latent", guide_distribution(latent, host, outputs, estimator, beta))

    elbo = numpyro_redge.ScoreFunction_ELBO(num_particles=particles) if particles > 1 else TraceMeanField_ELBO()
    optimizer = optax.adam(LEARNING_RATE)
    exact = getattr(numpyro_redge, latent.exact_estimator)()

    def loss(weights, beta, key, x):
        return elbo.loss(key, weights, model, guide, x, beta)

    @jax.jit
    def run_steps(carry, indices):
        def step(carry, batch):
            weights, optimizer_state, estimator_state, key = carry
            key, draw = jax.random.split(key)
            if adaptive:
                gradient, density = jax.grad(loss, argnums=(0, 1))(weights, estimator_state.beta, draw, images[batch])
                estimator_state = estimator.update_state(estimator_state, density)
            else:
                gradient = jax.grad(loss)(weights, None, draw, images[batch])
            changes, optimizer_state = optimizer.update(gradient, optimizer_state, weights)
            return (optax.apply_updates(weights, changes), optimizer_state, estimator_state, key), None

        return jax.lax.scan(step, carry, indices)[0]

    @jax.jit
    def evaluate(weights, key):
        guide_law = guide_distribution(latent, host, network(jax.nn.relu, weights, "encoder", images), exact)
        draws = guide_law.sample(key, (EVALUATION_DRAWS,))
        pixel_logits = network(jax.nn.relu, weights, "decoder", latent.code(draws))
        likelihood = dist.Bernoulli(logits=pixel_logits).to_event(1).log_prob(images).mean(0)
        return (likelihood - dist.kl_divergence(guide_law, prior_distribution(latent, host))).mean()

    keys = iter(jax.random.split(jax.random.PRNGKey(20_000 + seed), budget // every + 1))
    steps_per_check = every // particles
    chunks = minibatches(seed, budget // particles, len(images)).reshape(-1, steps_per_check, BATCH)
    carry = (initial, optimizer.init(initial), estimator.init_state() if adaptive else None, jax.random.PRNGKey(seed))
    # Compiled ahead, so that the time counts steps only, as in Pyro.
    run_steps = run_steps.lower(carry, jnp.asarray(chunks[0])).compile()
    checkpoints, seconds, step = {0: float(evaluate(carry[0], next(keys)))}, 0.0, 0
    for indices in chunks:
        start = time.perf_counter()
        carry = jax.block_until_ready(run_steps(carry, jnp.asarray(indices)))
        seconds += time.perf_counter() - start
        step += steps_per_check
        checkpoints[step * particles] = float(evaluate(carry[0], next(keys)))
    return checkpoints, seconds


@dataclasses.dataclass(frozen=True)
class _JaxArrays:
    """``jax.numpy`` with ``jax.nn`` as ``.nn``, the shape the torch module has."""

    numpy: object
    nn: object

    def __getattr__(self, name):
        return getattr(self.numpy, name)


FITS = {"pyro": ("Pyro", pyro_run), "numpyro": ("NumPyro", numpyro_run)}


def first_reaching(curve, target):
    """The first decoder-evaluation count at which ``curve`` (``{evaluations: ELBO}``) is at least
    ``target``, or ``None``."""
    return next((evaluations for evaluations, value in sorted(curve.items()) if value >= target), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", choices=list(LATENTS), action="append", help="repeatable; default: all three")
    parser.add_argument("--quick", action="store_true", help="one seed, 1 200 decoder evaluations")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--budget",
        type=int,
        help="decoder evaluations per image per run (default: 12 000 for categorical, 4 000 for the others)",
    )
    parser.add_argument("--every", type=int, default=500, help="decoder evaluations between ELBO checkpoints")
    parser.add_argument("--hosts", nargs="+", choices=list(FITS), default=list(FITS))
    parser.add_argument("--only", nargs="+", help=f"these estimator labels only ({TARGET_LABEL} is always run)")
    parser.add_argument("--plot", default="discrete_vae", help="plot file prefix ('' for none)")
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    most_particles = max(row[3] for row in RLOO_ROWS)
    for name in args.latent or list(LATENTS):
        latent = LATENTS[name]
        budget, every = (1_200, 300) if args.quick else (args.budget or latent.budget, args.every)
        if budget % (4 * every) or every % most_particles:
            parser.error(f"--budget must be a multiple of 4 x --every, and --every a multiple of {most_particles}")
        estimators = [
            row for row in latent.estimators if not args.only or row[0] in args.only or row[0] == TARGET_LABEL
        ]
        curves = report(name, latent, estimators, args.hosts, seeds, budget, every)
        if args.plot and not plotting_available():
            print("no plot: matplotlib is not installed (pip install matplotlib)")
        elif args.plot:
            plot(f"{args.plot}_{name}.png", name, [row[0] for row in latent.estimators], curves)


def report(name, latent, estimators, hosts, seeds, budget, every):
    """Run and print one latent family's table; its mean curves ``{(host, label): {evaluations: ELBO}}``."""
    marks = (budget // 4, budget // 2, budget)
    print(
        f"\ndigits VAE, {name} latent ({latent.description}); MLP {HIDDEN}, Adam {LEARNING_RATE}, batch {BATCH}; "
        f"{budget} decoder evaluations per image per run; ELBO in nats per image on all images "
        f"({EVALUATION_DRAWS} exact draws); mean +- standard error over {len(seeds)} seed(s)"
    )
    header = " ".join(f"{f'@{mark}':>14s}" for mark in marks)
    print(
        f"{'host':8s} {'estimator':16s} {header} {'to ' + TARGET_LABEL:>10s} {'s/1000 ev':>9s} "
        f"{'s to ' + TARGET_LABEL:>11s}",
        flush=True,
    )
    curves = {}
    for key in hosts:
        host_name, run = FITS[key]
        target = None
        # RLOO 4 comes first, so each row can be printed as soon as its runs end.
        for label, class_name, options, particles in sorted(estimators, key=lambda row: row[0] != TARGET_LABEL):
            runs = [run(latent, class_name, options, particles, seed, budget, every) for seed in seeds]
            evaluations = sorted(runs[0][0])
            values = np.array([[checkpoints[e] for e in evaluations] for checkpoints, _ in runs])
            means = values.mean(0)
            errors = values.std(0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(len(evaluations))
            curves[(host_name, label)] = dict(zip(evaluations, means, strict=True))
            target = means[-1] if target is None else target
            cells = " ".join(f"{means[evaluations.index(m)]:8.2f}+-{errors[evaluations.index(m)]:4.2f}" for m in marks)
            reached = first_reaching(curves[(host_name, label)], target)
            seconds = 1000 * np.mean([seconds for _, seconds in runs]) / budget
            to_target = f"{reached * seconds / 1000:.1f}" if reached else "-"
            print(
                f"{host_name:8s} {label:16s} {cells} {reached if reached else '-':>10} {seconds:9.2f} {to_target:>11s}",
                flush=True,
            )
    return curves


def plot(path, name, labels, curves):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5))
    axis = figure.subplots()
    hosts = list(dict.fromkeys(host for host, _ in curves))
    for (host, label), curve in curves.items():
        points = sorted(curve.items())[1:]
        axis.plot(
            [evaluations for evaluations, _ in points],
            [value for _, value in points],
            color=f"C{labels.index(label)}",
            linestyle=["-", "--"][hosts.index(host) % 2],
            label=f"{host} {label}",
        )
    axis.set(xlabel="decoder evaluations per image", ylabel="ELBO (nats per image)", title=f"digits VAE, {name} latent")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
