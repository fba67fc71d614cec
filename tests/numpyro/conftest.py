import jax
import numpyro
import pytest


@pytest.fixture(autouse=True)
def jax_device(device):
    """``--device cuda`` runs the JAX tests on the GPU; JAX picks it by default when installed."""
    if device.startswith("cuda") and jax.default_backend() != "gpu":
        pytest.skip("--device cuda asked, but JAX has no GPU backend installed")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def validation():
    numpyro.enable_validation(True)
    yield
    numpyro.enable_validation(False)
