"""Proof that a computation never waits for the device: a context in each host that fails on any
host synchronisation.

- PyTorch: every tensor method that copies a value to the host, replaced for the block by one
  that raises (``.item()``, ``bool()``, ``float()``, ``int()``, ``.tolist()``, ``.cpu()``, ``.numpy()``
  and the index protocol). On a CPU machine these cost nothing, so only such a guard shows that a
  GPU run would not stall on them.
- JAX: ``jax.transfer_guard("disallow")``, around a ``jit``-compiled call whose inputs are already
  on the device (JAX's eager mode transfers every Python constant, so the guard is meaningful for
  compiled code, which is how NumPyro runs SVI).
"""

import contextlib

SYNCHRONISING_TENSOR_METHODS = (
    "item",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "tolist",
    "cpu",
    "numpy",
)


class HostSynchronisation(RuntimeError):
    """A tensor's value was read on the host inside a guarded block."""


@contextlib.contextmanager
def torch_guard():
    """Each synchronising method of ``torch.Tensor`` replaced, for the block, by one that raises. A
    ``TorchFunctionMode`` alone is not enough: the autograd engine runs the backward of a custom
    ``autograd.Function`` outside it (a ``bool()`` there went unnoticed)."""
    import torch

    def forbidden(name):
        def method(*args, **kwargs):
            raise HostSynchronisation(f"host synchronisation: Tensor.{name} inside a guarded block")

        return method

    originals = {name: getattr(torch.Tensor, name) for name in SYNCHRONISING_TENSOR_METHODS}
    try:
        for name in SYNCHRONISING_TENSOR_METHODS:
            setattr(torch.Tensor, name, forbidden(name))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@contextlib.contextmanager
def no_host_synchronisation(backend):
    """The host's guard (see the module docstring) for ``backend`` (``"pyro"`` or ``"numpyro"``)."""
    if backend == "pyro":
        with torch_guard():
            yield
    else:
        import jax

        with jax.transfer_guard("disallow"):
            yield
