"""The data-parallel group over which AIMLE sums its statistics, as a context shared by both hosts:
``pyro_redge.distributed.reduce_statistics`` sets a ``torch.distributed`` group,
``numpyro_redge.distributed.reduce_statistics`` the name of a mapped axis; the estimators read
:func:`statistics_group` when they are applied."""

import contextlib
import contextvars

_STATISTICS_GROUP = contextvars.ContextVar("redge_statistics_group", default=None)


@contextlib.contextmanager
def reduce_statistics(group):
    """Within the block, :func:`statistics_group` is ``group`` (``None``: no reduction)."""
    token = _STATISTICS_GROUP.set(group)
    try:
        yield
    finally:
        _STATISTICS_GROUP.reset(token)


def statistics_group():
    """The group of the innermost :func:`reduce_statistics` block, or ``None``."""
    return _STATISTICS_GROUP.get()
