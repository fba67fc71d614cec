"""The distribution under a host's wrappers, for both hosts (whose wrapper classes share the
attribute names ``base_dist``, ``reinterpreted_batch_ndims`` and ``_mask``)."""


def core_and_masks(fn, independent, masked, transparent=()):
    """The distribution under the ``independent`` (``.to_event``), ``masked`` (``.mask``) and
    ``transparent`` (e.g. NumPyro's ``ExpandedDistribution``) wrapper classes of ``fn``, and each
    mask met on the way with the number of trailing dimensions it lacks against that
    distribution's batch (those the ``independent`` wrappers inside it reinterpret).

    :param fn: a host distribution, possibly wrapped.
    :param type independent: the host's ``Independent`` class.
    :param type masked: the host's ``MaskedDistribution`` class.
    :param tuple transparent: wrapper classes to look through without further bookkeeping.
    :returns: ``(core, [(mask, missing_trailing_dims), ...])``.
    """
    masks, reinterpreted = [], 0
    while True:
        if isinstance(fn, independent):
            reinterpreted += fn.reinterpreted_batch_ndims
            fn = fn.base_dist
        elif isinstance(fn, masked):
            masks.append((fn._mask, reinterpreted))
            fn = fn.base_dist
        elif transparent and isinstance(fn, transparent):
            fn = fn.base_dist
        else:
            return fn, [(mask, reinterpreted - above) for mask, above in masks]
