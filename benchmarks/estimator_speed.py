"""Estimator speed and memory, ours vs the reference packages, measured side by side in one run.

For each shape B×K, each estimator's forward+backward (sample, then backpropagate a random
cotangent) is timed in interleaved rounds against its reference (``redge`` 0.1.0 and ``reinmax``
0.1.0); the claim is the ratio of medians, never an absolute time. Where JAX is installed, the
``numpyro_redge`` twin (jitted forward+backward, noise drawn inside) is timed in the same rounds
against our PyTorch version (eager); target: JAX jitted ≤ PyTorch eager. Memory is the size of the
tensors the autograd graph keeps for the backward pass (the activation memory that a training
step holds), and on CUDA also the peak allocated memory of one forward+backward.

    python benchmarks/estimator_speed.py [--quick] [--device cuda]
"""

import argparse
import statistics
import time

import torch

import pyro_redge

TARGETS = {"StraightThrough": 0.2, "ReinMax": 0.3, "ReDGE": 0.5}


def reference_functions():
    import redge
    import reinmax

    return {
        "StraightThrough": (pyro_redge.StraightThrough(), lambda x: redge.straight_through(x)),
        "GumbelSoftmax": (pyro_redge.GumbelSoftmax(0.5), lambda x: redge.gumbel_softmax(x, 0.5)),
        "ReinMax": (pyro_redge.ReinMax(1.0), lambda x: reinmax.reinmax(x, 1.0)[0]),
        "ReDGE": (pyro_redge.ReDGE(), lambda x: redge.redge(x, 5, 0.5)),
        "ReDGE(cov)": (pyro_redge.ReDGE(variant="cov"), lambda x: redge.redge_cov(x, 5, 0.5)),
        "ReDGE(rein)": (
            pyro_redge.ReDGE(variant="rein"),
            lambda x: redge.SAMPLERS["reindge"](x, n_steps=5, t_1=0.5),
        ),
    }


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_backward(function, logits, cotangent):
    leaf = logits.detach().requires_grad_()
    (function(leaf) * cotangent).sum().backward()


def saved_bytes(function, logits):
    """Bytes of the distinct tensors the autograd graph saves for the backward pass."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = function(logits.detach().requires_grad_())
    del output
    return sum(storages.values())


def peak_cuda_bytes(function, logits, cotangent):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated()
    forward_backward(function, logits, cotangent)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - baseline


def jax_forward_backward(name, logits, cotangent):
    """A no-argument callable running the jitted JAX forward+backward of estimator ``name``, with
    fresh noise at every call, blocking until the result is ready."""
    import jax
    import jax.numpy as jnp

    import numpyro_redge

    estimator = {
        "StraightThrough": numpyro_redge.StraightThrough(),
        "GumbelSoftmax": numpyro_redge.GumbelSoftmax(0.5),
        "ReinMax": numpyro_redge.ReinMax(1.0),
        "ReDGE": numpyro_redge.ReDGE(),
        "ReDGE(cov)": numpyro_redge.ReDGE(variant="cov"),
        "ReDGE(rein)": numpyro_redge.ReDGE(variant="rein"),
    }[name]
    x, g = jnp.asarray(logits.cpu().numpy()), jnp.asarray(cotangent.cpu().numpy())
    step = jax.jit(jax.grad(lambda x, key: (estimator(key, x) * g).sum()))
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 10_000))
    return lambda: step(x, next(keys)).block_until_ready()


def time_functions(functions, rounds, device):
    """Median seconds of each no-argument callable, timed in alternating rounds."""
    times = {key: [] for key in functions}
    for function in functions.values():
        for _ in range(3):
            function()
    for _ in range(rounds):
        for key, function in functions.items():
            synchronize(device)
            start = time.perf_counter()
            function()
            synchronize(device)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    rounds = 7 if args.quick else 25
    shapes = [(4096, 64), (256, 10000)]
    print(f"PyTorch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads, {rounds} rounds")
    print("forward+backward, ours vs reference on the same shape in the same run; ratio < 1 is faster")
    header = (
        f"{'estimator':14s} {'B×K':>10s} {'ours ms':>9s} {'ref ms':>9s} {'ratio':>7s} {'target':>7s} "
        f"{'saved MB ours/ref':>18s}"
    )
    if args.device.startswith("cuda"):
        header += f" {'peak MB ours/ref':>17s}"
    try:
        import jax

        with_jax = args.device == "cpu" or jax.default_backend() == "gpu"
    except ImportError:
        with_jax = False
    if with_jax:
        header += f" {'jax ms':>8s} {'jax/torch':>9s}"
    print(header)
    failures = []
    for batch, categories in shapes:
        logits = torch.randn(batch, categories, device=args.device)
        cotangent = torch.randn(batch, categories, device=args.device)
        for name, (ours, theirs) in reference_functions().items():
            # Bound now: the callables are timed within this iteration only.
            functions = {
                "ours": lambda ours=ours, logits=logits, cotangent=cotangent: forward_backward(ours, logits, cotangent),
                "theirs": lambda theirs=theirs, logits=logits, cotangent=cotangent: forward_backward(
                    theirs, logits, cotangent
                ),
            }
            if with_jax:
                functions["jax"] = jax_forward_backward(name, logits, cotangent)
            medians = time_functions(functions, rounds, args.device)
            mine, reference = medians["ours"], medians["theirs"]
            ratio = mine / reference
            target = TARGETS.get(name)
            memory = (saved_bytes(ours, logits) / 2**20, saved_bytes(theirs, logits) / 2**20)
            line = (
                f"{name:14s} {f'{batch}×{categories}':>10s} {mine * 1e3:9.3f} {reference * 1e3:9.3f} "
                f"{ratio:7.2f} {f'≤ {target:.1f}' if target else '':>7s} {memory[0]:8.2f}/{memory[1]:<9.2f}"
            )
            if args.device.startswith("cuda"):
                peak = (peak_cuda_bytes(ours, logits, cotangent), peak_cuda_bytes(theirs, logits, cotangent))
                line += f" {peak[0] / 2**20:8.2f}/{peak[1] / 2**20:<8.2f}"
            if with_jax:
                jax_ratio = medians["jax"] / mine
                line += f" {medians['jax'] * 1e3:8.3f} {jax_ratio:9.2f}"
                if jax_ratio > 1.0:
                    failures.append(f"JAX {name} at {batch}×{categories}: {jax_ratio:.2f}× our PyTorch eager")
            print(line, flush=True)
            if target is not None and ratio > target:
                failures.append(f"{name} at {batch}×{categories}: ratio {ratio:.2f} > {target}")
            if memory[0] > memory[1]:
                failures.append(f"{name} at {batch}×{categories}: saves more memory than the reference")
    print("\nall targets met" if not failures else "\ntargets missed:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
