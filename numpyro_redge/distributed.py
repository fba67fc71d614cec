r"""Data-parallel training with ``jax.sharding``: the minibatch's rows are split over a mesh of
devices, the parameters are replicated, and one ``jit``-compiled step runs on all of them. Each
device draws the noise of its own rows (JAX's partitionable random numbers give every row the
value it would have on one device), and the reductions over the minibatch, AIMLE's norms among
them, are global: for the same key a step equals the single-device step, whatever the number of
devices.

On one machine the mesh holds every local device (several GPUs; on CPU, as many devices as
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` asks for). On several machines, call
``jax.distributed.initialize()`` first: ``jax.devices()`` is then every process's devices, and
each process fills in the rows of its own devices (:func:`shard_rows` asks only for those)::

    mesh = data_parallel_mesh()
    state = svi.init(key, *replicate(example_batch, mesh))        # or jit(..., out_shardings=...)
    step = jax.jit(svi.update, out_shardings=(replicated(mesh), replicated(mesh)))
    for batch in batches:                                          # NumPy arrays, the same everywhere
        state, loss = step(state, shard_rows(batch, mesh))

:func:`numpyro_redge.topic_models.fit` does all this with ``data_parallel=True``.

``shard_map`` or ``pmap`` code sees only its own rows: wrap it in :func:`reduce_statistics` with
the mapped axis' name so that AIMLE's statistics are summed over it.
"""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from redge_core import statistics_group as shared
from redge_core.statistics_group import statistics_group  # noqa: F401  (read by the estimators from here)

#: The name of the mesh axis over which the minibatch's rows are split.
DATA_AXIS = "data"


def data_parallel_mesh(devices=None):
    """A one-axis :class:`jax.sharding.Mesh` named :data:`DATA_AXIS` over ``devices`` (default:
    ``jax.devices()``, every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def world_size(mesh):
    """The number of devices over which ``mesh`` splits the rows."""
    return mesh.shape[DATA_AXIS]


def replicated(mesh):
    """The sharding of a value held whole by every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def row_sharding(mesh):
    """The sharding of an array whose leading axis is split over ``mesh``."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def padded_rows(rows, mesh):
    """``rows`` rounded up to a multiple of the number of devices of ``mesh``."""
    size = world_size(mesh)
    return -(-rows // size) * size


def row_multiple(multiple, mesh):
    """The least common multiple of ``multiple`` and the number of devices of ``mesh``: a padding
    that both keeps its own purpose and splits evenly."""
    return math.lcm(multiple, world_size(mesh))


def shard_rows(tree, mesh):
    """Each array of ``tree`` (NumPy or JAX, the same in every process) as a global array whose
    leading axis is split over ``mesh``; 0-dimensional arrays are replicated. Each process
    provides only the rows of its own devices. A leading axis that the number of devices does not
    divide is a ``ValueError`` (pad it: :func:`padded_rows`)."""
    size = world_size(mesh)

    def place(value):
        value = np.asarray(value)
        if value.ndim == 0:
            return jax.make_array_from_callback(value.shape, replicated(mesh), lambda index: value[index])
        if value.shape[0] % size:
            raise ValueError(
                f"an array of {value.shape[0]} rows cannot be split evenly over {size} devices: pad it to "
                f"{padded_rows(value.shape[0], mesh)} rows"
            )
        return jax.make_array_from_callback(value.shape, row_sharding(mesh), lambda index: value[index])

    return jax.tree.map(place, tree)


def replicate(tree, mesh):
    """Each array of ``tree`` held whole by every device of ``mesh``."""
    return jax.tree.map(
        lambda value: jax.make_array_from_callback(
            np.shape(value), replicated(mesh), lambda index: np.asarray(value)[index]
        ),
        tree,
    )


def reduce_statistics(axis_name):
    """Within the block, AIMLE's step size and its observed gradient density use statistics summed
    over the mapped axis ``axis_name`` of ``shard_map`` / ``pmap`` (the norms of the logits and of
    the incoming gradient, and the nonzero count of the finite difference): each device's backward
    pass is then its share of the single-device one. Read when the estimator is applied. Not
    needed under ``jit`` over sharded arrays, whose reductions are already global."""
    return shared.reduce_statistics(axis_name)


def varying_axes(value):
    """The mapped axes of ``shard_map`` over which ``value`` differs from device to device (empty
    outside ``shard_map``, or for a value every device holds whole)."""
    aval = jax.typeof(value) if hasattr(jax, "typeof") else jax.core.get_aval(value)  # jax < 0.4.36
    manual = getattr(aval, "manual_axis_type", None)
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def all_reduce_sum(value, axis_name):
    """``value`` summed over the mapped axis ``axis_name`` (``None``: ``value`` itself)."""
    return value if axis_name is None else jax.lax.psum(value, axis_name)
