import pytest

_REPORT = []


def pytest_addoption(parser):
    parser.addoption(
        "--device", default="cpu", help="device for the PyTorch and JAX tests: cpu or cuda"
    )


@pytest.fixture(scope="session")
def device(request):
    return request.config.getoption("--device")


@pytest.fixture
def report():
    """Record a measured number; all of them are printed at the end of the test run."""

    def record(line):
        _REPORT.append(line)

    return record


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured (bias, distances, ratios)")
        for line in _REPORT:
            terminalreporter.write_line(line)
