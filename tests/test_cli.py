"""The ``redge`` command line and the backend-neutral package: ``redge_core`` imports no host,
``redge --help`` works without any host, and the demo and the benchmarks run with whichever host
is installed, naming a missing one and the extra that installs it.

A missing host is simulated in a subprocess by an import hook that finds no module of the blocked
names (``sys.modules[name] = None`` would do too, but SciPy's array-API helpers read
``sys.modules["torch"]`` and fail on ``None``), and in-process by ``sys.modules[name] = None``;
nothing is uninstalled."""

import os
import pathlib
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import redge_core
from redge_core import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST_MODULES = ("torch", "jax", "jaxlib", "pyro", "numpyro", "optax", "funsor", "pyro_redge", "numpyro_redge")


def run_python(code, blocked=(), timeout=300):
    """Run ``code`` in a fresh interpreter where the modules ``blocked`` cannot be imported."""
    preamble = textwrap.dedent(
        f"""
        import sys

        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {tuple(blocked)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NotInstalled())
        """
    )
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", preamble + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=timeout,
    )


def test_redge_core_imports_no_host():
    modules = sorted(info.name for info in pkgutil.walk_packages(redge_core.__path__, "redge_core."))
    assert {"redge_core.cli", "redge_core.reporting", "redge_core.topic_models", "redge_core.corpus"} <= set(modules)
    result = run_python(
        f"""
        import importlib
        for module in {modules!r}:
            importlib.import_module(module)
        loaded = [name for name in {HOST_MODULES!r} if sys.modules.get(name) is not None]
        print("loaded hosts:", loaded)
        """,
        blocked=HOST_MODULES,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded hosts: []" in result.stdout


def test_help_works_without_any_host():
    for arguments, expected in [
        (["--help"], ["demo", "bench"]),
        (["demo", "--help"], ["--quick", "--host", "--plot", "--data-parallel"]),
        (["bench", "--help"], ["--quick", "--only"]),
    ]:
        result = run_python(f"from redge_core.cli import main\nmain({arguments!r})", blocked=HOST_MODULES)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: redge") and all(word in result.stdout for word in expected), (
            result.stdout
        )


def test_the_installed_redge_script_answers_help():
    script = pathlib.Path(sys.executable).parent / "redge"
    if not script.exists():
        pytest.skip("no redge script next to this interpreter (the package is not installed in it)")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout and "bench" in result.stdout


@pytest.mark.parametrize("missing, present", [("numpyro", "pyro"), ("pyro", "numpyro")])
def test_host_selection_keeps_the_installed_host_and_names_the_missing_one_with_its_extra(
    monkeypatch, missing, present
):
    monkeypatch.setitem(sys.modules, missing, None)
    hosts, messages = cli.select_hosts()
    assert [host.key for host in hosts] == [present]
    assert len(messages) == 1
    assert cli.HOSTS[missing].name in messages[0] and f'pip install "pyro-redge[{missing}]"' in messages[0]


def test_host_selection_with_no_host_installed_names_both_extras(monkeypatch):
    for name in ("pyro", "numpyro"):
        monkeypatch.setitem(sys.modules, name, None)
    hosts, messages = cli.select_hosts()
    assert hosts == []
    assert any('"pyro-redge[pyro]"' in message for message in messages) and any(
        '"pyro-redge[numpyro]"' in message for message in messages
    )


def test_demo_without_any_host_exits_with_the_extras_to_install():
    result = run_python("from redge_core.cli import main\nmain(['demo', '--quick'])", blocked=HOST_MODULES)
    assert result.returncode != 0
    assert '"pyro-redge[pyro]"' in result.stderr and '"pyro-redge[numpyro]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_pyro_alone_when_numpyro_is_missing_and_skips_the_plot_without_matplotlib(tmp_path):
    pytest.importorskip("pyro")
    plot = tmp_path / "demo.png"
    # A tiny budget on a slice of the corpus: this checks the command's wiring, not the fits
    # (tests/test_topic_models.py checks those).
    result = run_python(
        f"""
        from redge_core import cli, corpus
        load = corpus.load_news_articles
        corpus.load_news_articles = lambda: tuple(part.subset(range(count)) for part, count in zip(load(), (64, 16)))
        cli.DEMO_BUDGETS["quick"] = {{"lda": (1, 1, None), "codes": (1, 1, None), "prodlda": (1, 1, None)}}
        cli.DEMO_TOPICS["quick"] = 3
        cli.main(["demo", "--quick", "--no-progress", "--plot", {str(plot)!r}])
        print("numpyro imported:", sys.modules.get("numpyro_redge") is not None)
        """,
        blocked=("numpyro", "matplotlib"),
    )
    assert result.returncode == 0, result.stderr
    assert "NumPyro is not installed" in result.stderr and 'pip install "pyro-redge[numpyro]"' in result.stderr
    for fit in ("LDA[ReinMax]", "LDA[TraceEnum_ELBO]", "codes[ReinMax]", "codes[RLOO]", "ProdLDA[Trace_ELBO]"):
        assert f"Pyro     {fit}" in result.stdout
    assert "NumPyro  " not in result.stdout and "numpyro imported: False" in result.stdout
    assert "no plot: matplotlib is not installed" in result.stdout and not plot.exists()


def test_demo_refuses_a_host_asked_for_but_missing():
    result = run_python(
        "from redge_core.cli import main\nmain(['demo', '--quick', '--host', 'numpyro'])", blocked=("numpyro",)
    )
    assert result.returncode != 0
    assert 'pip install "pyro-redge[numpyro]"' in result.stderr and "--host" in result.stderr


def test_bench_skips_what_needs_a_missing_host_and_says_how_to_install_it():
    pytest.importorskip("numpyro")
    # Only the estimator-speed study is asked for: it needs PyTorch, so nothing heavy runs.
    result = run_python(
        "from redge_core.cli import main\nmain(['bench', '--quick', '--only', 'estimator_speed'])",
        blocked=("torch", "pyro"),
    )
    assert result.returncode == 0, result.stderr
    assert "redge bench with NumPyro" in result.stdout
    assert (
        "== benchmarks/estimator_speed.py" in result.stdout
        and 'skipped: needs Pyro (pip install "pyro-redge[pyro]")' in result.stdout
    )
    assert "scaling" not in result.stdout


@pytest.mark.parametrize(
    "environment, hosts, expected",
    [
        ({}, ["pyro"], "started by torchrun"),
        ({}, [], "started by torchrun"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, ["numpyro"], "devices of one process"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, [], "devices of one process"),
    ],
)
def test_data_parallel_demo_refuses_a_launch_that_does_not_fit_the_hosts(monkeypatch, environment, hosts, expected):
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    arguments = ["demo", "--quick", "--data-parallel"] + [f"--host={host}" for host in hosts]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert expected in str(exit_info.value) and "torchrun --standalone --nproc-per-node 2" in str(exit_info.value)


def test_bench_papers_runs_the_papers_experiments_only(monkeypatch):
    ran = []
    monkeypatch.setattr(cli.runpy, "run_path", lambda path, run_name: ran.append((pathlib.Path(path).name, sys.argv)))
    cli.main(["bench", "papers", "--quick"])
    assert [name for name, _ in ran] == ["polynomial_programming.py", "discrete_vae.py"]
    assert all("--quick" in argv for _, argv in ran)
