"""Noise schedules shared by both hosts (NumPy only): ReDGE's DDIM schedule, computed once as
Python floats so that PyTorch and JAX, every dtype and every device use the same constants with
no host synchronisation."""

import functools
import typing

import numpy as np


class DDIMSchedule(typing.NamedTuple):
    """ReDGE's noise schedule as Python floats, with the products the reference forms in float32."""

    alphas: tuple
    sigmas: tuple
    sigmas_sq: tuple
    alphas_sq: tuple
    alphas_sigmas: tuple


@functools.cache
def ddim_schedule(num_steps, t1):
    """ReDGE's flow-matching schedule ``α = [1, linspace(1 − t1, 1e−4, n − 1)]``, ``σ = 1 − α``.

    Computed in float32 exactly as ``torch.linspace`` does in the reference package ``redge``
    0.1.0 (first half from the start, second half from the end), and returned as Python floats.

    :param int num_steps: the number of schedule points :math:`n \\ge 2`.
    :param float t1: the noise level of the last step, in (0, 1).
    :rtype: DDIMSchedule
    """
    count = num_steps - 1
    start, end = np.float32(1.0 - t1), np.float32(1e-4)
    index = np.arange(count, dtype=np.float64)
    if count == 1:
        linear = np.array([start], np.float32)
    else:
        step = (end - start) / np.float32(count - 1)
        linear = np.where(index < count // 2, start + step * index, end - step * (count - 1 - index)).astype(np.float32)
    alphas = np.concatenate([np.ones(1, np.float32), linear])
    sigmas = np.float32(1.0) - alphas

    def as_floats(array):
        return tuple(float(v) for v in array.astype(np.float32))

    return DDIMSchedule(
        as_floats(alphas),
        as_floats(sigmas),
        as_floats(sigmas * sigmas),
        as_floats(alphas * alphas),
        as_floats(alphas * sigmas),
    )
