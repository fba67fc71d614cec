import pyro
import pytest


@pytest.fixture(autouse=True)
def validation():
    """Every Pyro test runs with Pyro's validation on: our values must pass it."""
    pyro.enable_validation(True)
    yield
    pyro.enable_validation(False)
