"""The support window of a count distribution, written once for both hosts (NumPy/SciPy only).

A count distribution of ours keeps the values ``L..K`` (its *window*): ``K`` is the smallest count
whose upper tail mass :math:`P(N > K)` is below ``tail_mass`` for every batch element, ``L`` the
largest whose lower tail mass :math:`P(N < L)` is, so the cost follows the law's spread, not its
mean (a Poisson of rate 10⁶ keeps about 10⁴ values, not 10⁶). The window is a shape, so it is
found on the host, once per distribution instance, by :func:`support_window`: from SciPy's
quantiles for the named count families (:func:`scipy_law`; the work is one quantile per batch
element), or, for any other base, from the host's float64 log-pmf on a grid that starts at the
support's lower bound (the work is ``batch × K``).
"""

import functools
import math
import numbers

import numpy as np
from scipy import special, stats

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
    """The window ``(L, K)`` that ``truncation`` fixes, or ``None`` when it is ``None`` (the window is
    then searched); a ``ValueError`` naming it otherwise. An int ``K ≥ lower`` keeps ``lower..K``
    (``lower``: the support's lower bound); a pair ``(L, K)`` of ints with ``lower ≤ L ≤ K`` keeps
    ``L..K``. At most ``max_support`` values."""
    if truncation is None:
        return None
    pair = isinstance(truncation, (tuple, list)) and len(truncation) == 2
    bounds = tuple(truncation) if pair else (lower, truncation)
    if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in bounds) or not (
        lower <= bounds[0] <= bounds[1]
    ):
        raise ValueError(
            f"truncation must be None, an integer K >= {lower} (keeping {lower}..K; {lower} is the support's lower "
            f"bound) or a pair (L, K) of integers with {lower} <= L <= K (keeping L..K), got {truncation!r}"
        )
    first, last = int(bounds[0]), int(bounds[1])
    if last - first + 1 > max_support:
        raise ValueError(
            f"truncation={truncation!r} keeps {last - first + 1} values, more than max_support={max_support} "
            "(the largest support the distribution builds); pass a larger max_support= to allow it"
        )
    return first, last


def _remedy(parameters):
    return (
        f"check {parameters}, or pass a larger max_support= (memory grows as batch × support), a larger "
        "tail_mass=, or a static truncation="
    )


def _too_wide(owner, tail_mass, max_support, first, last, parameters, detail=""):
    return ValueError(
        f"{owner}: keeping both tails below tail_mass={tail_mass:g} needs more than max_support={max_support} "
        f"values ({first}..{last}; max_support is the largest support it builds){detail}; {_remedy(parameters)}"
    )


#: The count families whose window comes from SciPy's quantiles; their parameters as the hosts name them.
SCIPY_FAMILIES = ("poisson", "binomial", "geometric", "negative_binomial")


def scipy_law(family, rate=None, total_count=None, probs=None, logits=None):
    """The frozen SciPy law of a named count family (parameters as float64 NumPy arrays, broadcast
    over the batch), counted as the hosts count: ``geometric`` is the number of failures before
    the first success, ``negative_binomial`` the number of events of probability ``probs``
    before ``total_count`` stops. From ``logits``, the success and failure probabilities are both
    computed by ``expit`` (no ``1 − p`` cancellation)."""
    if family not in SCIPY_FAMILIES:
        raise ValueError(f"family must be one of {SCIPY_FAMILIES}, got {family!r}")
    if family == "poisson":
        return stats.poisson(np.asarray(rate, np.float64))
    if logits is not None:
        logits = np.asarray(logits, np.float64)
        success, failure = special.expit(logits), special.expit(-logits)
    else:
        success = np.asarray(probs, np.float64)
        failure = 1.0 - success
    if family == "binomial":
        return stats.binom(np.asarray(total_count, np.float64), success)
    if family == "geometric":
        return stats.geom(success, loc=-1)
    return stats.nbinom(np.asarray(total_count, np.float64), failure)


def _refine(start, too_far, lower, upper):
    """Step each element of ``start`` (clipped to ``[lower, upper]``) by ±1 to the boundary of the
    monotone predicate ``too_far(k)`` (``False`` below the boundary, ``True`` above): the largest
    ``k`` with ``too_far(k)`` false. SciPy's quantiles are off by at most a few counts, so this
    takes a few vectorised steps."""
    k = np.clip(start, lower, upper)
    for _ in range(64):
        down = too_far(k) & (k > lower)
        up = ~too_far(k + 1) & (k < upper)
        if not (down.any() or up.any()):
            return k
        k = k - down + up
    raise ArithmeticError("SciPy's quantile is more than 64 counts from its own CDF")


def quantile_window(law, lower, upper_limit, tail_mass, max_support, owner, parameters):
    """The window ``(L, K)`` of the frozen SciPy ``law`` (see :func:`scipy_law`): ``K`` the smallest
    count with ``P(N > K) < tail_mass``, ``L`` the largest with ``P(N < L) < tail_mass``, each
    taken over every batch element (``L ≤ K``; ``(lower, lower)`` for an empty batch)."""
    if np.broadcast(*(np.asarray(argument) for argument in law.args)).size == 0:
        return lower, lower
    with np.errstate(all="ignore"):  # SciPy's degenerate laws (p = 1, p = 0) divide by zero on the way
        return _quantile_window(law, lower, upper_limit, tail_mass, max_support, owner, parameters)


def _quantile_window(law, lower, upper_limit, tail_mass, max_support, owner, parameters):
    upper = np.inf if upper_limit is None else upper_limit
    first, last = np.asarray(law.ppf(tail_mass), np.float64), np.asarray(law.isf(tail_mass), np.float64)
    if not (np.isfinite(first).all() and np.isfinite(last).all()):
        raise ValueError(
            f"{owner}: its law has no finite tail quantiles (an infinite or NaN parameter, or no mass at all), so no "
            f"support of at most max_support={max_support} values keeps its tails below tail_mass={tail_mass:g}; "
            f"{_remedy(parameters)}"
        )
    if np.max(last) - np.min(first) + 1 > max_support + 128:  # beyond what refining by a few counts could fix
        raise _too_wide(owner, tail_mass, max_support, int(np.min(first)), int(np.max(last)), parameters)
    first = _refine(first, lambda k: law.cdf(k - 1) >= tail_mass, lower, upper)
    last = _refine(last, lambda k: law.sf(k - 1) < tail_mass, lower, upper)
    first, last = int(np.min(first)), int(np.max(last))
    first = min(first, last)
    if last - first + 1 > max_support:
        raise _too_wide(owner, tail_mass, max_support, first, last, parameters)
    return first, last


def quantile_dropped_mass(law, window):
    """``P(N < L) + P(N > K)`` under the frozen SciPy ``law``, per batch element, for the window ``(L, K)``."""
    first, last = window
    with np.errstate(all="ignore"):
        return np.asarray(law.cdf(first - 1) + law.sf(last), np.float64)


def grid_dropped_mass(log_pmf, lower, window):
    """``P(N < L) + P(N > K)`` per batch element, from the float64 log-pmf on the grid ``lower..K``
    (grid on the last axis) for the window ``(L, K)``."""
    first, _ = window
    log_pmf = np.asarray(log_pmf, np.float64)
    below = np.exp(special.logsumexp(log_pmf[..., : first - lower], axis=-1)) if first > lower else 0.0
    return upper_tail_mass(log_pmf)[..., -1] + below


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


def grid_window(
    log_pmf_on,
    lower,
    tail_mass,
    guess,
    upper_limit=None,
    max_support=DEFAULT_MAX_SUPPORT,
    owner="the distribution",
    parameters="its parameters",
):
    """The window ``(L, K)`` from the log-pmf on a grid: ``K ≥ lower`` the smallest count whose upper
    tail ``P(N > K)`` is below ``tail_mass`` for every batch element, ``L`` the largest whose lower
    tail ``P(N < L)`` is (``(lower, lower)`` for an empty batch).

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
    remedy = _remedy(parameters)
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
        if small.any() or (upper_limit is not None and end >= upper_limit):
            last = lower + int(small.argmax()) if small.any() else int(upper_limit)
            return _lower_end(log_pmf, lower, last, tail_mass), last
        if end >= cap:
            massless = np.all(log_pmf == -np.inf, axis=-1).any()
            detail = f" (some batch element has no mass at all on {lower}..{cap})" if massless else ""
            raise _too_wide(owner, tail_mass, max_support, lower, cap, parameters, detail)
        end = min(cap, 2 * end + 1)


def _lower_end(log_pmf, lower, last, tail_mass):
    """``L``: the largest count ``≤ last`` with ``P(N < L) < tail_mass`` for every batch element,
    from the log-pmf on the grid ``lower..`` (the lower tail is the CDF before ``L``)."""
    if log_pmf.size == 0 or last == lower:  # an empty batch, or a window of the one count `lower`
        return lower
    below = np.exp(np.logaddexp.accumulate(log_pmf, axis=-1))[..., : last - lower]  # P(N ≤ k) for k < K
    small = (below < tail_mass).reshape(-1, below.shape[-1]).all(0)
    # the grid's CDF is non-decreasing: the counts whose CDF stays below tail_mass lead
    return lower + int(np.argmin(small)) if not small.all() else last


def support_window(
    lower,
    upper_limit,
    tail_mass,
    max_support,
    owner,
    parameters,
    law=None,
    log_pmf_on=None,
    guess=None,
):
    """The support window ``(L, K)`` of a count distribution (see the module docstring): from the
    frozen SciPy ``law`` when given (:func:`quantile_window`), else from the host's float64
    log-pmf ``log_pmf_on(values)`` on grids from ``lower`` (:func:`grid_window`, first grid ending
    at ``guess``). The one search both hosts run, once per instance."""
    if law is not None:
        return quantile_window(law, lower, upper_limit, tail_mass, max_support, owner, parameters)
    return grid_window(log_pmf_on, lower, tail_mass, guess, upper_limit, max_support, owner, parameters)


@functools.lru_cache(maxsize=64)
def poisson_centring(first, last):
    r"""``(m, table)``: the reference rate and the float64 table of the centred Poisson log-pmf on
    the window ``first..last`` (read-only NumPy array).

    Both hosts compute the Poisson log-pmf on the window up to a constant per batch element,
    :math:`\log p(L + j) - \log p(L) + \text{const} = j\,\log(\lambda/m) - E_j` with

    .. math:: E_j = \log\Gamma(L + j + 1) - \log\Gamma(L + 1) - j \log m,

    ``m`` the window's midpoint (at least 1). The table holds every large, cancelling term in
    float64 (at rate 10⁴, :math:`j\log\lambda` and :math:`\log\Gamma` are each about 10⁵, so float32
    would lose two decimals of the log-pmf); what is left per batch element is one multiply-add per
    value with :math:`\log(\lambda/m)`, small near the window, instead of a log and a log-gamma per
    value and element. The constant cancels in the normalisation and in every estimator (they see
    the logits only through softmax-invariant quantities)."""
    reference = max(0.5 * (first + last), 1.0)
    offsets = np.arange(last - first + 1, dtype=np.float64)
    table = special.gammaln(first + offsets + 1) - special.gammaln(first + 1) - offsets * math.log(reference)
    table.setflags(write=False)
    return reference, table
