"""The ``redge`` command.

``redge demo`` fits LDA and a discrete-code neural topic model to the bundled news corpus by SVI
in each installed host (our ReinMax against exact enumeration and against REINFORCE) and prints
held-out perplexity, coherence, time and topics side by side; ``redge bench`` runs the
benchmarks of a source checkout. Both run with whichever of Pyro and NumPyro are installed.
"""

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import os
import pathlib
import runpy
import sys

import redge_core

# Budgets of `redge demo`: (epochs, steps cap or None, held-out evaluation every this many steps or
# None for once per epoch) per model; --quick: 12 steps of LDA, 4 epochs of the discrete-code
# model (212 steps: NPMI above 0.1 in both hosts, measured), no ProdLDA (a minute of CPU in all).
DEMO_BUDGETS = {
    "full": {"lda": (8, None, None), "codes": (30, None, None), "prodlda": (30, None, None)},
    "quick": {"lda": (1, 12, 3), "codes": (4, None, None)},
}
DEMO_TOPICS = {"full": 20, "quick": 10}
BENCHMARKS_FOLDER = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


@dataclasses.dataclass(frozen=True)
class Host:
    """One host of the demo and the benchmarks: the modules it needs and the extra that
    installs them."""

    key: str
    name: str
    package: str
    requires: tuple
    extra: str

    @property
    def install(self):
        return f'pip install "pyro-redge[{self.extra}]"'

    def missing(self):
        """The required modules that cannot be imported (found without importing them)."""
        return [module for module in self.requires if not _installed(module)]


HOSTS = {
    "pyro": Host("pyro", "Pyro", "pyro_redge", ("torch", "pyro"), "pyro"),
    # funsor: the LDA baseline marginalises the assignments by NumPyro's TraceEnum_ELBO.
    "numpyro": Host("numpyro", "NumPyro", "numpyro_redge", ("jax", "numpyro", "optax", "funsor"), "numpyro"),
}


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A script of ``benchmarks/``: the hosts it runs with (all of ``hosts`` when ``any_host`` is
    false; with ``any_host`` it is told which by ``--hosts``), the other modules it needs with how
    to install them, whether it takes ``--device``, and whether it is one of the estimator papers'
    experiments (``redge bench papers`` runs those)."""

    script: str
    hosts: tuple
    any_host: bool = False
    papers: bool = False
    requires: tuple = ()
    install: str = ""
    takes_device: bool = False


BENCHMARKS = (
    Benchmark(
        "estimator_speed.py",
        ("pyro",),
        requires=("redge", "reinmax"),
        install="pip install redge==0.1.0 reinmax==0.1.0 (the reference packages it is timed against)",
        takes_device=True,
    ),
    Benchmark("scaling.py", ("pyro", "numpyro"), any_host=True),
    Benchmark("reinforce_race.py", ("pyro", "numpyro"), any_host=True),
    Benchmark("corpus_scale.py", ("pyro", "numpyro"), any_host=True),
    Benchmark("polynomial_programming.py", ("pyro", "numpyro"), any_host=True, papers=True),
    Benchmark("discrete_vae.py", ("pyro", "numpyro"), any_host=True, papers=True),
)


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def select_hosts(requested=None):
    """The installed hosts among ``requested`` (keys of :data:`HOSTS`, all by default), and one
    message per missing host naming what is missing and the extra that installs it.

    :returns: ``(hosts, messages)``, ``hosts`` a list of :class:`Host`.
    """
    hosts, messages = [], []
    for key in requested or list(HOSTS):
        host = HOSTS[key]
        missing = host.missing()
        if missing:
            messages.append(f"{host.name} is not installed (missing: {', '.join(missing)}); to add it: {host.install}")
        else:
            hosts.append(host)
    return hosts, messages


def _announce_hosts(requested, what):
    hosts, messages = select_hosts(requested)
    for message in messages:
        print(message, file=sys.stderr)
    if messages and requested:
        sys.exit(f"redge {what}: a host asked for with --host is not installed.")
    if not hosts:
        sys.exit(f"redge {what} needs Pyro or NumPyro; nothing to run.")
    print(f"redge {what} with {' and '.join(host.name for host in hosts)}", flush=True)
    return hosts


def _run_demo(args):
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    if args.data_parallel:
        _check_data_parallel_launch(args.host, launched_processes)
    # Under torchrun every process runs the demo; the first one speaks for all of them.
    with contextlib.redirect_stdout(io.StringIO()) if os.environ.get("RANK", "0") != "0" else contextlib.nullcontext():
        _demo(args)
    if args.data_parallel and launched_processes > 1:
        from pyro_redge.distributed import finish

        finish()
        # Leave without the interpreter's teardown, where gloo's threads may still hold tensors
        # whose release aborts the process (pytorch/pytorch#179291), after the results are out.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _check_data_parallel_launch(requested, launched_processes):
    """``--data-parallel`` needs the PyTorch demo launched by ``torchrun`` (one process per device
    or core), while the NumPyro demo splits over the devices of one process: exit with the command
    that works when the launch does not fit the hosts asked for."""
    requested = set(requested or HOSTS)
    if launched_processes > 1 and "numpyro" in requested:
        sys.exit(
            "redge demo --data-parallel under torchrun runs PyTorch processes; the NumPyro demo splits over the "
            "devices "
            "of one process. Run `torchrun --standalone --nproc-per-node 2 --no-python redge demo --data-parallel "
            "--host pyro` and, without torchrun, `redge demo --data-parallel --host numpyro` (on CPU with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=2)."
        )
    if launched_processes == 1 and "pyro" in requested and "RANK" not in os.environ:
        sys.exit(
            "redge demo --data-parallel with Pyro needs one process per device, started by torchrun: "
            "`torchrun --standalone --nproc-per-node 2 --no-python redge demo --data-parallel --host pyro` "
            "(NumPyro: `redge demo --data-parallel --host numpyro`)."
        )


def _demo(args):
    from redge_core import corpus as redge_corpus
    from redge_core.reporting import plot_topic_results, plotting_available, print_topic_results

    hosts = _announce_hosts(args.host, "demo")
    mode = "quick" if args.quick else "full"
    if args.quick:
        # The quick run is compile-bound in JAX: fewer XLA passes cut its CPU by about a quarter
        # (read when JAX is imported, below; a value the caller set is kept).
        os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    train, held_out = redge_corpus.load_news_articles()
    print(
        f"news corpus: {train.num_documents} training and {held_out.num_documents} held-out articles, "
        f"{train.vocabulary_size} words, {train.num_tokens} training tokens"
    )
    results = []
    for host in hosts:
        demo = importlib.import_module(f"{host.package}.demo")
        results += demo.topic_model_demo(
            train,
            held_out,
            DEMO_TOPICS[mode],
            DEMO_BUDGETS[mode],
            device=args.device,
            progress=not args.no_progress,
            data_parallel=args.data_parallel,
        )
    print_topic_results(results)
    if not args.plot:
        return
    if plotting_available():
        plot_topic_results(results, args.plot)
        print(f"\nplot: {args.plot}")
    else:
        print("\nno plot: matplotlib is not installed (pip install matplotlib)")


@contextlib.contextmanager
def _arguments(argv):
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _run_bench(args):
    if not (BENCHMARKS_FOLDER / "estimator_speed.py").exists():
        sys.exit("redge bench runs the scripts in benchmarks/ of a source checkout (pip install -e .)")
    hosts = {host.key for host in _announce_hosts(args.host, "bench")}
    for benchmark in BENCHMARKS:
        name = benchmark.script.removesuffix(".py")
        if (args.only and name not in args.only) or (args.group == "papers" and not benchmark.papers):
            continue
        print(f"\n== benchmarks/{benchmark.script}", flush=True)
        usable = [key for key in benchmark.hosts if key in hosts]
        if not usable or (not benchmark.any_host and len(usable) < len(benchmark.hosts)):
            needed = (
                " or ".join(HOSTS[key].name for key in benchmark.hosts)
                if benchmark.any_host
                else " and ".join(HOSTS[key].name for key in benchmark.hosts)
            )
            installs = "; ".join(HOSTS[key].install for key in benchmark.hosts if key not in hosts)
            print(f"skipped: needs {needed} ({installs})")
            continue
        missing = [module for module in benchmark.requires if not _installed(module)]
        if missing:
            print(f"skipped: needs {', '.join(missing)}: {benchmark.install}")
            continue
        extra = ["--quick"] if args.quick else []
        if benchmark.takes_device:
            extra += ["--device", args.device]
        if benchmark.any_host:
            extra += ["--hosts", *usable]
        path = BENCHMARKS_FOLDER / benchmark.script
        with _arguments([str(path), *extra]):
            runpy.run_path(str(path), run_name="__main__")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="redge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"redge {redge_core.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("demo", "fit topic models with discrete latents to the bundled news corpus in each installed host"),
        (
            "bench",
            "estimator speed vs the reference packages, scaling with the support, REINFORCE races, corpus scale, "
            "and the papers' experiments (polynomial programming, discrete VAEs on digits)",
        ),
    ]:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--quick", action="store_true", help="a short run (about a minute of CPU per host for the demo)"
        )
        command.add_argument(
            "--host",
            action="append",
            choices=list(HOSTS),
            help="run this host only (repeatable; default: every installed host)",
        )
        command.add_argument("--device", default="cpu", help="cpu or cuda (PyTorch side; JAX uses its default device)")
        if name == "demo":
            command.add_argument(
                "--plot", default="redge-demo.png", help="where to write the plot (needs matplotlib; '' for none)"
            )
            command.add_argument("--no-progress", action="store_true", help="no progress bars")
            command.add_argument(
                "--data-parallel",
                action="store_true",
                help="split each minibatch over processes (PyTorch, under torchrun) or devices (JAX)",
            )
        else:
            command.add_argument(
                "group",
                nargs="?",
                choices=["all", "papers"],
                default="all",
                help="'papers': only the estimator papers' experiments (polynomial programming, discrete VAEs)",
            )
            command.add_argument(
                "--only",
                action="append",
                choices=[b.script.removesuffix(".py") for b in BENCHMARKS],
                help="run this benchmark only (repeatable)",
            )
    args = parser.parse_args(argv)
    {"demo": _run_demo, "bench": _run_bench}[args.command](args)


if __name__ == "__main__":
    main()
