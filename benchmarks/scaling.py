"""How the distributions scale: counts with the rate, k-subsets with n, categoricals with K.

For each host installed, this script measures in one run, side by side, our distribution's
``rsample`` / ``log_prob`` and backward against, as the yardstick, a softmax + backward over logits
of the same batch × support shape: the time ratio, the memory ratio (PyTorch: bytes the autograd
graph saves; JAX: the compiled program's temporary bytes) and the growth exponent of the time with
the size (d log time / d log size).

- **Counts**: a Poisson of rate λ keeps the window [L, K] with both tails below ``tail_mass``
  (about λ ± 4.9·√λ at the default 1e-6), so its work grows as √λ, not λ (exponent ≈ 0.5 in the
  rate). One ``rsample`` + ``log_prob`` + backward (ReinMax), batch 1000.
- **k-subsets**: ``KSubset(logits, k = n / 10).log_prob`` of an exact draw + backward, batch 4:
  O(n·k) work by a tree of polynomial products (exponent ≈ 2 in n with k ∝ n, ≈ 1 against the
  softmax's n).
- **Categoricals**: ``OneHotCategorical(logits, estimator=ReinMax())`` ``rsample`` + ``log_prob``
  + backward, batch 100: a constant factor of the softmax (exponent ≈ 1 in K).

    python benchmarks/scaling.py [--quick] [--hosts pyro numpyro] [--only counts k_subsets categoricals]
"""

import argparse
import importlib.util
import math
import time

RATES = [1.0, 1e2, 1e4, 1e6]
SUBSET_SIZES = [100, 1_000, 10_000]
CATEGORY_COUNTS = [10, 100, 1_000, 10_000, 100_000]


def best_time(function, repeats):
    function()  # warm-up (and, in JAX, compilation)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def torch_saved_bytes(function):
    import torch

    sizes = [0]

    def pack(tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return max(sum(sizes), 1)


def torch_row(ours, softmax, repeats):
    """(time ratio, memory ratio, seconds) of ``ours`` against ``softmax``, side by side."""
    ours_seconds = best_time(ours, repeats)
    memory_ratio = torch_saved_bytes(ours) / torch_saved_bytes(softmax)
    return ours_seconds / best_time(softmax, repeats), memory_ratio, ours_seconds


def jax_row(ours, softmax, ours_arguments, softmax_arguments, repeats):
    import jax

    def memory(function, arguments):
        analysis = function.lower(*arguments).compile().memory_analysis()
        return max(analysis.temp_size_in_bytes + analysis.output_size_in_bytes, 1)

    ours_seconds = best_time(lambda: jax.block_until_ready(ours(*ours_arguments)), repeats)
    softmax_seconds = best_time(lambda: jax.block_until_ready(softmax(*softmax_arguments)), repeats)
    return (
        ours_seconds / softmax_seconds,
        memory(ours, ours_arguments) / memory(softmax, softmax_arguments),
        ours_seconds,
    )


def torch_softmax(shape):
    import torch

    logits = torch.zeros(shape, requires_grad=True)
    return lambda: torch.softmax(logits, -1)[..., 0].sum().backward()


def jax_softmax(shape):
    import jax
    import jax.numpy as jnp

    return jax.jit(jax.grad(lambda x: jax.nn.softmax(x, -1)[..., 0].sum())), (jnp.zeros(shape, jnp.float32),)


def torch_counts(batch, repeats):
    import torch

    import pyro_redge

    torch.manual_seed(0)
    for rate_value in RATES:
        rate = torch.full((batch,), rate_value, requires_grad=True)
        window = pyro_redge.Poisson(rate).support_window()

        def ours(rate=rate, window=window):
            d = pyro_redge.Poisson(rate, estimator=pyro_redge.ReinMax(), truncation=window)
            value = d.rsample()
            (value.sum() + d.log_prob(value).sum()).backward()

        size = window[1] - window[0] + 1
        yield rate_value, f"window {window}", torch_row(ours, torch_softmax((batch, size)), repeats)


def jax_counts(batch, repeats):
    import jax
    import jax.numpy as jnp

    import numpyro_redge

    key = jax.random.PRNGKey(0)
    for rate_value in RATES:
        rate = jnp.full((batch,), rate_value, jnp.float32)
        window = numpyro_redge.Poisson(rate).support_window()

        def loss(rate, key, window=window):
            d = numpyro_redge.Poisson(rate, estimator=numpyro_redge.ReinMax(), truncation=window)
            value = d.rsample(key)
            return value.sum() + d.log_prob(value).sum()

        size = window[1] - window[0] + 1
        softmax, softmax_arguments = jax_softmax((batch, size))
        row = jax_row(jax.jit(jax.grad(loss)), softmax, (rate, key), softmax_arguments, repeats)
        yield rate_value, f"window {window}", row


def torch_k_subsets(batch, repeats):
    import torch

    import pyro_redge

    torch.manual_seed(0)
    for n in SUBSET_SIZES:
        logits = torch.randn(batch, n, requires_grad=True)
        value = pyro_redge.KSubset(logits, n // 10).sample_exact()

        def ours(logits=logits, value=value, k=n // 10):
            pyro_redge.KSubset(logits, k).log_prob(value).sum().backward()

        yield n, f"k = {n // 10}", torch_row(ours, torch_softmax((batch, n)), repeats)


def jax_k_subsets(batch, repeats):
    import jax

    import numpyro_redge

    for n in SUBSET_SIZES:
        logits = jax.random.normal(jax.random.PRNGKey(n), (batch, n))
        value = numpyro_redge.KSubset(logits, n // 10).sample_exact(jax.random.PRNGKey(1))
        ours = jax.jit(jax.grad(lambda x, v, k=n // 10: numpyro_redge.KSubset(x, k).log_prob(v).sum()))
        softmax, softmax_arguments = jax_softmax((batch, n))
        yield n, f"k = {n // 10}", jax_row(ours, softmax, (logits, value), softmax_arguments, repeats)


def torch_categoricals(batch, repeats):
    import torch

    import pyro_redge

    torch.manual_seed(0)
    for categories in CATEGORY_COUNTS:
        logits = torch.randn(batch, categories, requires_grad=True)

        def ours(logits=logits):
            d = pyro_redge.OneHotCategorical(logits=logits, estimator=pyro_redge.ReinMax())
            value = d.rsample()
            (value[..., 0].sum() + d.log_prob(value).sum()).backward()

        yield categories, "", torch_row(ours, torch_softmax((batch, categories)), repeats)


def jax_categoricals(batch, repeats):
    import jax

    import numpyro_redge

    key = jax.random.PRNGKey(0)
    for categories in CATEGORY_COUNTS:
        logits = jax.random.normal(jax.random.PRNGKey(categories), (batch, categories))

        def loss(logits, key):
            d = numpyro_redge.OneHotCategorical(logits=logits, estimator=numpyro_redge.ReinMax())
            value = d.rsample(key)
            return value[..., 0].sum() + d.log_prob(value).sum()

        softmax, softmax_arguments = jax_softmax((batch, categories))
        yield categories, "", jax_row(jax.jit(jax.grad(loss)), softmax, (logits, key), softmax_arguments, repeats)


SECTIONS = {
    "counts": (
        "Poisson rsample + log_prob + backward (ReinMax), batch {batch}",
        "rate",
        lambda quick: 100 if quick else 1000,
        {"pyro": torch_counts, "numpyro": jax_counts},
    ),
    "k_subsets": (
        "KSubset log_prob of an exact draw + backward, batch {batch}",
        "n",
        lambda quick: 4,
        {"pyro": torch_k_subsets, "numpyro": jax_k_subsets},
    ),
    "categoricals": (
        "OneHotCategorical (ReinMax) rsample + log_prob + backward, batch {batch}",
        "K",
        lambda quick: 10 if quick else 100,
        {"pyro": torch_categoricals, "numpyro": jax_categoricals},
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches and 3 repeats instead of 10")
    parser.add_argument("--hosts", nargs="+", choices=["pyro", "numpyro"], default=["pyro", "numpyro"])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    repeats = 3 if args.quick else 10
    modules = {"pyro": "torch", "numpyro": "jax"}
    for host in args.hosts:
        if importlib.util.find_spec(modules[host]) is None:
            print(f"{modules[host]} is not installed: the {host} rows are skipped")
    hosts = [host for host in args.hosts if importlib.util.find_spec(modules[host]) is not None]
    for section in args.only:
        title, size_name, batch_of, rows = SECTIONS[section]
        batch = batch_of(args.quick)
        print(f"\n{title.format(batch=batch)}, against softmax + backward on batch × support")
        columns = (size_name, 9), ("", 22), ("ours (s)", 9), ("time ratio", 10), ("memory ratio", 12), ("exponent", 8)
        print(f"{'host':8s} " + " ".join(f"{name:>{width}s}" for name, width in columns))
        for host in hosts:
            previous = None
            for size, note, (time_ratio, memory_ratio, seconds) in rows[host](batch, repeats):
                exponent = (
                    "" if previous is None else f"{math.log(seconds / previous[1]) / math.log(size / previous[0]):8.2f}"
                )
                previous = (size, seconds)
                print(
                    f"{'PyTorch' if host == 'pyro' else 'JAX':8s} {size:9.0e} {note:>22s} {seconds:9.4f} "
                    f"{time_ratio:10.2f} {memory_ratio:12.2f} {exponent}"
                )
    print(
        "\nours (s): the best of the repeats, after warm-up (compilation); on the threads the hosts choose.\n"
        "exponent: d log(time) / d log(size) from the row above (counts: ≈ 0.5 in the rate, the cost follows\n"
        "the spread √λ). Ratios are measured side by side in this run; count windows are searched once (SciPy)."
    )


if __name__ == "__main__":
    main()
