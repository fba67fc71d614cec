import importlib.util
import os
import shutil
import tempfile

import pytest

from tests.backends import BACKENDS

_REPORT = []


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for the PyTorch and JAX tests: cpu or cuda")


@pytest.fixture(scope="session")
def device(request):
    return request.config.getoption("--device")


_HOST_PACKAGES = {"pyro": "pyro", "numpyro": "numpyro"}


@pytest.fixture(params=list(BACKENDS))
def backend(request, device):
    """Each test that takes ``backend`` runs once per host: PyTorch/Pyro and JAX/NumPyro, with the
    host's validation on and (JAX) float64 enabled, restored afterwards."""
    if importlib.util.find_spec(_HOST_PACKAGES[request.param]) is None:
        pytest.skip(f"{request.param} is not installed")
    if request.param == "numpyro" and device.startswith("cuda"):
        import jax

        if jax.default_backend() != "gpu":
            pytest.skip("--device cuda asked, but JAX has no GPU backend installed")
    instance = BACKENDS[request.param](device)
    with instance.validation(True), instance.x64():
        yield instance


@pytest.fixture
def report(request):
    """Record a measured number; all of them are printed at the end of the test run (carried as
    a user property of the test, so that they reach the controller under ``pytest -n``)."""

    def record(line):
        request.node.user_properties.append(("measured", line))

    return record


def pytest_runtest_logreport(report):
    if report.when == "call":
        _REPORT.extend(value for key, value in report.user_properties if key == "measured")


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured (bias, distances, ratios)")
        for line in _REPORT:
            terminalreporter.write_line(line)


def pytest_configure(config):
    # One persistent JAX compilation cache for the whole run, shared by the pytest workers and the
    # notebook kernels they start (they inherit the environment): a program that several tests
    # compile (the same model fitted by a tutorial and by a test, the same small operation in both
    # workers) is compiled once. Fresh for each run and removed at its end, so no run reuses
    # another's compilations; a cache the caller set is left alone.
    if not os.environ.get("PYTEST_XDIST_WORKER") and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        config.redge_jax_cache = tempfile.mkdtemp(prefix="redge-jax-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = config.redge_jax_cache
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    # Under ``pytest -n`` each worker is one process per core: one thread each, so that the
    # workers do not oversubscribe the cores (the library itself never changes thread settings).
    # The tests compile hundreds of small XLA programs and run each a few times: unoptimised
    # machine code compiles about a quarter faster and changes no result (no fast-math).
    # Two host devices for the data-parallel tests (tests/test_data_parallel.py); every other test
    # runs on the first, as before. Read by XLA when JAX starts its CPU backend, after this.
    # Each flag is added unless the caller set it: the workers inherit the controller's
    # environment, so a plain setdefault there would keep the controller's flags only.
    flags = ["--xla_force_host_platform_device_count=2"]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        flags += [
            "--xla_cpu_multi_thread_eigen=false",
            "intra_op_parallelism_threads=1",
            "--xla_backend_optimization_level=0",
        ]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # JAX's own switch for fewer XLA passes: about a tenth less CPU in the compile-bound tests.
        os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    current = os.environ.get("XLA_FLAGS", "")
    for flag in flags:
        if flag.split("=")[0] not in current:
            current = f"{current} {flag}".strip()
    os.environ["XLA_FLAGS"] = current
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The processes a test starts (notebook kernels, `redge` commands, the data-parallel
        # workers) run beside both pytest workers: one PyTorch thread each too.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(1)


def pytest_unconfigure(config):
    cache = getattr(config, "redge_jax_cache", None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)


# The notebooks and the topic-model demos are the longest tests (10–26 s each). Collected last (their
# files sort last), they would end the run on one worker while the other idles; run first, the short
# tests fill the other worker meanwhile and the run ends evenly.
_LONGEST_MODULES_FIRST = ("test_tutorials.py", "test_topic_models.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return _LONGEST_MODULES_FIRST.index(name) if name in _LONGEST_MODULES_FIRST else len(_LONGEST_MODULES_FIRST)

    items.sort(key=rank)  # stable: the order within each group is kept
