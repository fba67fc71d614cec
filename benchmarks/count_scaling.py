"""How the count distributions scale with the rate: cost follows the spread, not the mean.

A Poisson of rate λ keeps the window [L, K] with both tails below ``tail_mass`` (about
λ ± 4.9·√λ at the default 1e-6), so its work and memory grow as √λ, not λ. For a batch of B equal
rates and each host installed, this script measures in one run, side by side, one
``rsample`` + ``log_prob`` + backward (ReinMax) and, as the yardstick, a softmax + backward over
logits of the same B × window shape: the window, the time ratio, the memory ratio (PyTorch: bytes
the autograd graph saves; JAX: the compiled program's temporary bytes) and the growth exponent of
the time with the rate (≈ 0.5 when the cost follows the spread).

    python benchmarks/count_scaling.py [--quick] [--hosts pyro numpyro]
"""

import argparse
import importlib.util
import math
import time

RATES = [1.0, 1e2, 1e4, 1e6]


def best_time(function, repeats):
    function()  # warm-up (and, in JAX, compilation)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def torch_rows(batch, repeats):
    import torch

    import pyro_redge

    torch.manual_seed(0)

    def saved_bytes(function):
        sizes = [0]

        def pack(tensor):
            sizes.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            function()
        return sum(sizes)

    for rate_value in RATES:
        rate = torch.full((batch,), rate_value, requires_grad=True)
        window = pyro_redge.Poisson(rate).support_window()
        logits = torch.zeros(batch, window[1] - window[0] + 1, requires_grad=True)

        def ours(rate=rate, window=window):
            d = pyro_redge.Poisson(rate, estimator=pyro_redge.ReinMax(), truncation=window)
            value = d.rsample()
            (value.sum() + d.log_prob(value).sum()).backward()

        def softmax(logits=logits):
            torch.softmax(logits, -1)[..., 0].sum().backward()

        yield (
            "PyTorch",
            rate_value,
            window,
            best_time(ours, repeats) / best_time(softmax, repeats),
            saved_bytes(ours) / saved_bytes(softmax),
            best_time(ours, repeats),
        )


def jax_rows(batch, repeats):
    import jax
    import jax.numpy as jnp

    import numpyro_redge

    key = jax.random.PRNGKey(0)
    for rate_value in RATES:
        rate = jnp.full((batch,), rate_value, jnp.float32)
        window = numpyro_redge.Poisson(rate).support_window()
        logits = jnp.zeros((batch, window[1] - window[0] + 1), jnp.float32)

        def loss(rate, key, window=window):
            d = numpyro_redge.Poisson(rate, estimator=numpyro_redge.ReinMax(), truncation=window)
            value = d.rsample(key)
            return value.sum() + d.log_prob(value).sum()

        ours = jax.jit(jax.grad(loss))
        softmax = jax.jit(jax.grad(lambda x: jax.nn.softmax(x, -1)[..., 0].sum()))

        def memory(function, *arguments):
            analysis = function.lower(*arguments).compile().memory_analysis()
            return max(analysis.temp_size_in_bytes + analysis.output_size_in_bytes, 1)

        ours_seconds = best_time(lambda: ours(rate, key).block_until_ready(), repeats)  # noqa: B023
        softmax_seconds = best_time(lambda: softmax(logits).block_until_ready(), repeats)  # noqa: B023
        yield (
            "JAX",
            rate_value,
            window,
            ours_seconds / softmax_seconds,
            memory(ours, rate, key) / memory(softmax, logits),
            ours_seconds,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 100 and 3 repeats instead of 1000 and 10")
    parser.add_argument("--hosts", nargs="+", choices=["pyro", "numpyro"], default=["pyro", "numpyro"])
    args = parser.parse_args()
    batch, repeats = (100, 3) if args.quick else (1000, 10)
    print(f"Poisson rsample + log_prob + backward (ReinMax), batch {batch}, vs softmax + backward on B × window")
    columns = ("rate", 9), ("window", 19), ("size", 6), ("time ratio", 10), ("memory ratio", 12), ("exponent", 8)
    print(f"{'host':8s} " + " ".join(f"{name:>{width}s}" for name, width in columns))
    hosts = {"pyro": ("torch", torch_rows), "numpyro": ("jax", jax_rows)}
    for host in args.hosts:
        module, rows = hosts[host]
        if importlib.util.find_spec(module) is None:
            print(f"{module} is not installed: its rows are skipped")
            continue
        previous = None
        for name, rate, window, time_ratio, memory_ratio, seconds in rows(batch, repeats):
            exponent = (
                "" if previous is None else f"{math.log(seconds / previous[1]) / math.log(rate / previous[0]):8.2f}"
            )
            previous = (rate, seconds)
            size = window[1] - window[0] + 1
            print(
                f"{name:8s} {rate:9.0e} {str(window):>19s} {size:6d} {time_ratio:10.2f} {memory_ratio:12.2f} {exponent}"
            )
    print(
        "\nexponent: d log(time) / d log(rate) from the row above (≈ 0.5: the cost follows the spread √λ).\n"
        "Ratios are measured side by side in this run; the window is searched once per rate (SciPy)."
    )


if __name__ == "__main__":
    main()
