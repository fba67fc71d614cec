"""Proof that a computation never waits for the device: a context in each host that fails on any
host synchronisation.

- PyTorch: a ``TorchFunctionMode`` that raises on every tensor method that copies a value to the
  host (``.item()``, ``bool()``, ``float()``, ``int()``, ``.tolist()``, ``.cpu()``, ``.numpy()``
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


def torch_guard():
    import torch
    from torch.overrides import TorchFunctionMode

    forbidden = {getattr(torch.Tensor, name): name for name in SYNCHRONISING_TENSOR_METHODS}

    class NoHostSynchronisation(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in forbidden:
                raise HostSynchronisation(f"host synchronisation: Tensor.{forbidden[func]} inside a guarded block")
            return func(*args, **(kwargs or {}))

    return NoHostSynchronisation()


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
