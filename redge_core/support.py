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
#: The smallest ``tail_mass`` the float64 search resolves: the tail is ``1 − CDF`` accumulated in
#: float64, whose rounding (~1e-16 per term, over up to ``max_support`` terms) must stay well below it.
MIN_TAIL_MASS = 1e-12
#: The default largest support a count distribution builds: ``K − lower + 1`` values (the grid of
#: every log-pmf is ``batch × that``; 8 MB per batch element in float64).
DEFAULT_MAX_SUPPORT = 1_000_000

#: The first grid of the search ends this many standard deviations above the largest mean ...
GUESS_STANDARD_DEVIATIONS = 8
#: ... plus this margin (a small mean with a tiny standard deviation still gets a few values).
GUESS_MARGIN = 10
#: The first grid's length above ``lower`` when the distribution has no mean or variance.
GUESS_WITHOUT_MOMENTS = 64


def check_tail_mass(tail_mass):
    """``tail_mass`` as a float in ``[MIN_TAIL_MASS, 1)``, or a ``ValueError`` naming it."""
    if isinstance(tail_mass, bool) or not isinstance(tail_mass, numbers.Real) or not MIN_TAIL_MASS <= tail_mass < 1:
        raise ValueError(
            f"tail_mass must be a real number in [{MIN_TAIL_MASS:g}, 1) (below {MIN_TAIL_MASS:g} the float64 "
            f"search cannot resolve the tail; use a static truncation= for an exact support), got {tail_mass!r}"
        )
    return float(tail_mass)


def check_max_support(max_support):
    """``max_support`` as a positive int, or a ``ValueError`` naming it."""
    if isinstance(max_support, bool) or not isinstance(max_support, numbers.Integral) or max_support < 1:
        raise ValueError(f"max_support must be a positive integer (a number of values), got {max_support!r}")
    return int(max_support)


def check_truncation(truncation, lower, max_support=DEFAULT_MAX_SUPPORT):
    """``truncation`` as ``None`` or an int ``≥ lower`` (the support's lower bound) keeping at most
    ``max_support`` values, or a ``ValueError`` naming it."""
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, numbers.Integral) or truncation < lower:
        raise ValueError(
            f"truncation must be None or an integer >= {lower} (the support's lower bound), got {truncation!r}"
        )
    if truncation - lower + 1 > max_support:
        raise ValueError(
            f"truncation={truncation} keeps {truncation - lower + 1} values, more than max_support={max_support} "
            "(the largest support the distribution builds); pass a larger max_support= to allow it"
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
    plus a margin, or ``lower + 64`` when the moments are unknown (``mean`` is ``None``). A guess
    from non-finite moments is ``inf`` (a NaN moment counts as infinite); an empty batch has the
    guess ``lower + 1``."""
    if mean is None:
        return lower + GUESS_WITHOUT_MOMENTS
    end = np.asarray(mean + GUESS_STANDARD_DEVIATIONS * stddev, np.float64)
    if end.size == 0:
        return lower + 1
    end = float(np.max(np.where(np.isnan(end), np.inf, end)))
    return math.inf if not math.isfinite(end) else math.ceil(end) + GUESS_MARGIN


def truncation_point(
    log_pmf_on,
    lower,
    tail_mass,
    guess,
    upper_limit=None,
    max_support=DEFAULT_MAX_SUPPORT,
    owner="the distribution",
    parameters="its parameters",
):
    """The smallest ``K ≥ lower`` whose upper tail ``P(N > K)`` is below ``tail_mass`` for every
    batch element (``lower`` for an empty batch).

    ``log_pmf_on(values)`` returns the log-pmf (float64, ``-inf`` off the support) on a 1-D NumPy
    grid of values, with the grid on the last axis. The grid starts at ``lower`` and ends at
    ``guess``, and doubles until the tail condition holds (or reaches ``upper_limit``, the end of
    a finite support): the work is ``batch × K`` up to the constant of the guess. ``K`` does not
    depend on the guess, only the number of grids tried does.

    No grid exceeds ``max_support`` values. A request that cannot be served is a ``ValueError``
    naming ``owner``, ``parameters``, ``tail_mass`` and ``max_support`` (and how to raise it):
    non-finite moments (an infinite ``guess``) before any grid is built, a NaN log-pmf, or no ``K``
    within ``max_support`` values.
    """
    remedy = (
        f"check {parameters}, or pass a larger max_support= (memory grows as batch × support), a larger "
        "tail_mass=, or a static truncation="
    )
    if not math.isfinite(guess):
        raise ValueError(
            f"{owner}: its mean or variance is not finite, so no support of at most max_support={max_support} "
            f"values keeps the upper tail below tail_mass={tail_mass:g}; {remedy}"
        )
    cap = lower + max_support - 1
    end = min(cap, max(int(guess), lower + 1))
    while True:
        if upper_limit is not None:
            end = min(end, int(upper_limit))
        values = np.arange(lower, end + 1, dtype=np.float64)
        log_pmf = np.asarray(log_pmf_on(values), np.float64)
        if np.isnan(log_pmf).any():
            raise ValueError(f"{owner}: the log-pmf is NaN on its support; check {parameters} (finite, in range)")
        tail = upper_tail_mass(log_pmf)
        small = (tail < tail_mass).reshape(-1, tail.shape[-1]).all(0)
        if small.any():
            return lower + int(small.argmax())
        if upper_limit is not None and end >= upper_limit:
            return int(upper_limit)
        if end >= cap:
            massless = np.all(log_pmf == -np.inf, axis=-1).any()
            detail = f" (some batch element has no mass at all on {lower}..{cap})" if massless else ""
            raise ValueError(
                f"{owner}: keeping the upper tail below tail_mass={tail_mass:g} needs more than "
                f"max_support={max_support} values ({lower}..{cap}, the largest support it builds){detail}; {remedy}"
            )
        end = min(cap, 2 * end + 1)
