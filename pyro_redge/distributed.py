r"""Data-parallel training with ``torch.distributed``: each process fits on its own share of every
minibatch with its own noise, the gradients are averaged across the processes, and AIMLE's
statistics are reduced across them, so that for the same noise one step equals the single-process
step on the whole minibatch.

Launch with ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU)::

    torchrun --standalone --nproc-per-node 2 train.py

and in ``train.py``::

    from pyro_redge.distributed import DataParallelELBO, finish, process_group, shard

    group = process_group()                   # torch.distributed, initialised from torchrun
    svi = SVI(model, guide, Adam({"lr": 0.01}), DataParallelELBO(Trace_ELBO(), group))
    for documents in batches:                 # the same batches in every process
        mine = shard(documents, group)        # this process's share
        svi.step(data[mine], scale=world_size * len(data) / len(documents))
    finish()                                  # every process done, then the group torn down

The scale of each process's share is ``world_size`` times the minibatch's (the gradients are
averaged, not summed). :func:`pyro_redge.topic_models.fit` does all this with
``data_parallel=True``.

Pyro keeps its parameters in the parameter store rather than in one ``torch.nn.Module``, so the
average is not ``DistributedDataParallel``'s bucketed hooks but one ``all_reduce`` of all the
gradients, flattened, after the backward pass (for a model written as a ``PyroModule`` whose
``ELBOModule`` is wrapped in ``DistributedDataParallel``, use :func:`reduce_statistics` around
the forward pass instead).
"""

import os

import pyro
import torch
import torch.distributed as dist
from pyro import poutine
from pyro.infer import ELBO

from redge_core import statistics_group as shared
from redge_core.statistics_group import statistics_group  # noqa: F401  (read by the estimators from here)

#: The environment variables ``torchrun`` sets in each process.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class _WholeWorld:
    """The default process group, named for :func:`reduce_statistics` (``None`` means "no
    reduction" there, so the default group needs a value of its own)."""

    group = None


WORLD = _WholeWorld()


def process_group(backend=None):
    """The default process group of ``torch.distributed``, initialised from ``torchrun``'s
    environment if it is not yet: backend ``nccl`` when CUDA is available, else ``gloo`` (or
    ``backend``). A ``RuntimeError`` names the missing variables when the process was not started
    by ``torchrun`` (or another launcher that sets them).

    :returns: :data:`WORLD`, the default group (pass it to :class:`DataParallelELBO` and
        :func:`reduce_statistics`).
    """
    if not dist.is_available():
        raise RuntimeError("data_parallel needs torch.distributed, which this PyTorch build does not have")
    if not dist.is_initialized():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise RuntimeError(
                f"data_parallel needs torch.distributed initialised, or torchrun's environment to initialise it "
                f"(missing: {', '.join(missing)}); launch with e.g. `torchrun --standalone --nproc-per-node 2 ...`"
            )
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return WORLD


def finish():
    """Wait for every process, then destroy the default process group (when one is initialised):
    the end of a data-parallel script. A process that tears gloo down while another is still in a
    collective can abort ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _group(group):
    return None if group is None or group is WORLD else group


def rank(group=WORLD):
    """This process's rank in ``group``."""
    return dist.get_rank(_group(group))


def world_size(group=WORLD):
    """The number of processes in ``group``."""
    return dist.get_world_size(_group(group))


def shard(documents, group=WORLD):
    """This process's share of the minibatch ``documents`` (a sequence or an array of indices,
    the same in every process): the ``rank``-th of ``world_size`` contiguous, nearly equal parts.
    A minibatch of fewer items than processes is not split: every process takes all of it (see
    :func:`share_scale`)."""
    size, index = world_size(group), rank(group)
    if len(documents) < size:
        return documents
    bounds = [len(documents) * part // size for part in range(size + 1)]
    return documents[bounds[index] : bounds[index + 1]]


def share_scale(num_documents, group=WORLD):
    """The factor of the ELBO's scale of a process's share of a minibatch of ``num_documents``:
    ``world_size`` when the minibatch is split (the averaged gradients then sum the shares), 1 when
    every process takes all of it (the average of the processes' estimates)."""
    size = world_size(group)
    return size if num_documents >= size else 1


def reduce_statistics(group=WORLD):
    """Within the block, AIMLE's step size and its observed gradient density use statistics
    summed over ``group`` (the norms of the logits and of the incoming gradient, and the nonzero
    count of the finite difference), so that each process's backward pass equals its share of the
    single-process one. Read when the forward pass runs (the backward may run in another thread).
    ``group=None``: no reduction."""
    return shared.reduce_statistics(group)


def all_reduce_sum(tensor, group):
    """``tensor`` summed over ``group`` (a new tensor; ``group=None``: ``tensor`` itself)."""
    if group is None:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=_group(group))
    return total


def average_gradients(parameters, group=WORLD):
    """Replace the gradient of each of ``parameters`` (the same list, in the same order, in every
    process) by its average over ``group``: one ``all_reduce`` of the flattened gradients. A
    parameter without a gradient counts as a zero gradient (its average may not be zero)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=_group(group))
    flat /= world_size(group)
    for parameter, average in zip(parameters, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
        parameter.grad = average.view_as(parameter)


def broadcast_parameters(names=None, group=WORLD, source=0):
    """Overwrite Pyro's parameters ``names`` (default: the whole parameter store), in name order,
    with those of rank ``source``: every process then starts from the same values."""
    store = pyro.get_param_store()
    names = sorted(store.keys()) if names is None else sorted(names)
    with torch.no_grad():
        for name in names:
            unconstrained = store._params[name]
            dist.broadcast(unconstrained.data, src=source, group=_group(group))


class DataParallelELBO(ELBO):
    """A Pyro ELBO whose ``loss_and_grads`` averages the gradients across ``group`` after the
    backward pass and runs within :func:`reduce_statistics`: the ELBO of :class:`~pyro.infer.SVI`
    for data-parallel training (see the module's docstring). Every process must take part in
    every step, with the same parameters.

    :param elbo: the Pyro ELBO to wrap (``Trace_ELBO``, ``TraceGraph_ELBO``, ``TraceEnum_ELBO``...).
    :param group: the data-parallel group (default: every process).
    """

    def __init__(self, elbo, group=WORLD):
        if not isinstance(elbo, ELBO):
            raise ValueError(f"elbo must be a Pyro ELBO (e.g. pyro.infer.Trace_ELBO()), got {elbo!r}")
        # The wrapped ELBO's settings are the ones that count; the base class keeps copies so that
        # code reading them (e.g. ``num_particles``) sees the same values.
        super().__init__(
            num_particles=elbo.num_particles,
            max_plate_nesting=elbo.max_plate_nesting,
            vectorize_particles=elbo.vectorize_particles,
            strict_enumeration_warning=elbo.strict_enumeration_warning,
        )
        self.elbo, self.group = elbo, group

    def _get_trace(self, model, guide, args, kwargs):
        return self.elbo._get_trace(model, guide, args, kwargs)

    def loss(self, model, guide, *args, **kwargs):
        with reduce_statistics(self.group):
            return self.elbo.loss(model, guide, *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs):
        with poutine.trace(param_only=True) as capture, reduce_statistics(self.group):
            loss = self.elbo.loss_and_grads(model, guide, *args, **kwargs)
        parameters = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
        average_gradients([parameters[name] for name in sorted(parameters)], self.group)
        return loss
