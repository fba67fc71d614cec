"""The truncated support of a count distribution, written once for both hosts (NumPy only).

A count distribution of ours keeps the values ``lower..K``, where ``K`` is the smallest count whose
upper tail mass :math:`P(N > K)` is below ``tail_mass`` for every batch element. ``K`` is a shape,
so it is found on the host, once per distribution instance: the host passes a callable that
returns its log-pmf, in float64, on a NumPy grid of values, and :func:`truncation_point` searches.
"""

import math
import numbers

import numpy as np

#: The default largest upper tail mass a count distribution may drop.
DEFAULT_TAIL_MASS = 1e-6

#: The first grid of the search ends this many standard deviations above the largest mean ...
GUESS_STANDARD_DEVIATIONS = 8
#: ... plus this margin (a small mean with a tiny standard deviation still gets a few values).
GUESS_MARGIN = 10
#: The first grid's length above ``lower`` when the distribution has no mean or variance.
GUESS_WITHOUT_MOMENTS = 64


def check_tail_mass(tail_mass):
    """``tail_mass`` as a float in the open interval (0, 1), or a ``ValueError`` naming it."""
    if isinstance(tail_mass, bool) or not isinstance(tail_mass, numbers.Real) or not 0 < tail_mass < 1:
        raise ValueError(f"tail_mass must be a real number in the open interval (0, 1), got {tail_mass!r}")
    return float(tail_mass)


def check_truncation(truncation, lower):
    """``truncation`` as ``None`` or an int ``≥ lower`` (the support's lower bound), or a
    ``ValueError`` naming it."""
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, numbers.Integral) or truncation < lower:
        raise ValueError(
            f"truncation must be None or an integer >= {lower} (the support's lower bound), got {truncation!r}"
        )
    return int(truncation)


def upper_tail_mass(log_pmf):
    r"""``P(N > k)`` for each grid point ``k`` on the last axis, from the log-pmf on the whole grid
    (starting at the support's lower bound): :math:`-\mathrm{expm1}(\log \mathrm{CDF}(k))`, in
    float64 so that tails down to ~1e-13 are resolved."""
    log_pmf = np.asarray(log_pmf, np.float64)
    return -np.expm1(np.logaddexp.accumulate(log_pmf, axis=-1))


def truncation_guess(mean, stddev, lower):
    """The end of the search's first grid: the largest ``mean + 8·stddev`` (NumPy arrays, float64)
    plus a margin, or ``lower + 64`` when the moments are unknown (``mean`` is ``None``)."""
    if mean is None:
        return lower + GUESS_WITHOUT_MOMENTS
    return math.ceil(float(np.max(mean + GUESS_STANDARD_DEVIATIONS * stddev))) + GUESS_MARGIN


def truncation_point(log_pmf_on, lower, tail_mass, guess, upper_limit=None):
    """The smallest ``K ≥ lower`` whose upper tail ``P(N > K)`` is below ``tail_mass`` for every
    batch element.

    ``log_pmf_on(values)`` returns the log-pmf (float64, ``-inf`` off the support) on a 1-D NumPy
    grid of values, with the grid on the last axis. The grid starts at ``lower`` and ends at
    ``guess``, and doubles until the tail condition holds (or reaches ``upper_limit``, the end of
    a finite support): the work is ``batch × K`` up to the constant of the guess. ``K`` does not
    depend on the guess, only the number of grids tried does.
    """
    end = max(int(guess), lower + 1)
    while True:
        if upper_limit is not None:
            end = min(end, int(upper_limit))
        values = np.arange(lower, end + 1, dtype=np.float64)
        tail = upper_tail_mass(log_pmf_on(values))
        small = (tail < tail_mass).reshape(-1, tail.shape[-1]).all(0)
        if small.any():
            return lower + int(small.argmax())
        if upper_limit is not None and end >= upper_limit:
            return int(upper_limit)
        end = 2 * end + 1
