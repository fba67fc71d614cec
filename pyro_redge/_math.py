"""Pure-math helpers for the PyTorch backend: written once here, used by every estimator."""

import torch


def compute_dtype(dtype):
    """The floating dtype the estimators compute in: at least float32, so that half-precision
    logits still give accurate probabilities and cumulative sums; the hard sample and the
    gradient are returned in the caller's dtype."""
    if not dtype.is_floating_point:
        raise ValueError(f"logits must have a floating dtype, got {dtype}")
    return torch.promote_types(dtype, torch.float32)


def softmax_vjp(probs, cotangent):
    r"""Vector-Jacobian product of the softmax at ``probs``:
    :math:`J(\pi)^\top g = \pi \odot (g - \langle \pi, g \rangle)`.

    Uses the fused kernel autograd itself uses for ``torch.softmax``: one pass instead of four.
    """
    return torch._softmax_backward_data(cotangent, probs, -1, probs.dtype)


def categorical_from_uniform(probs, uniform):
    """Index of a draw from ``Cat(probs)`` by inverse CDF, with one uniform in [0, 1) per row.

    ``probs`` (..., K) need not be normalised; ``uniform`` has shape (..., 1). The threshold is
    kept strictly below the total mass, so the chosen category is the first whose cumulative mass
    exceeds it and always has positive probability: a masked (zero-probability) category is never
    returned, whatever the rounding.
    """
    cdf = probs.cumsum(-1)
    total = cdf[..., -1:]
    threshold = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, threshold.contiguous(), right=True)


def one_hot(index, like):
    """Bitwise one-hot of ``index`` (..., 1) in the shape, dtype and device of ``like``."""
    return torch.zeros_like(like, memory_format=torch.contiguous_format).scatter_(-1, index, 1.0)


def sample_uniform(logits, dtype):
    """One uniform per row of ``logits``, for inverse-CDF sampling."""
    return torch.rand(logits.shape[:-1] + (1,), dtype=dtype, device=logits.device)


def sample_gumbel(shape, dtype, device):
    """Standard Gumbel noise, ``−log E`` with ``E ~ Exp(1)``."""
    return torch.empty(shape, dtype=dtype, device=device).exponential_().log_().neg_()


def safe_log(probs):
    """``log(probs)``, exactly ``-inf`` where a probability is zero, with a zero (not NaN)
    gradient there; unlike ``torch.distributions.utils.probs_to_logits`` nothing is clamped."""
    positive = probs > 0
    return torch.where(positive, torch.where(positive, probs, 1).log(), -torch.inf)


def expected_log_prob(value, log_probs):
    r"""``Σ_k value_k · log_probs_k`` over the last axis: the exact log-pmf of a one-hot ``value``,
    multilinear (hence differentiable) in the value. A category of probability zero contributes
    nothing where the value is zero (not ``0 · −∞ = NaN``) and ``−∞`` where it is not."""
    absent = (value == 0) & (log_probs == -torch.inf)
    return (value * log_probs.masked_fill(absent, 0.0)).sum(-1)


def categorical_kl(log_p, log_q):
    r"""Exact :math:`\mathrm{KL}(p\,\|\,q) = \sum_k p_k (\log p_k - \log q_k)` from normalised
    log-probabilities on the last axis; ``inf`` where ``p`` charges a category ``q`` does not."""
    p = log_p.exp()
    difference = torch.where(log_p == -torch.inf, 0.0, log_p - log_q)
    return (p * difference).sum(-1)


def upper_tail_mass(log_pmf):
    r"""``P(N > k)`` for each grid point ``k`` on the last axis, from the log-pmf on the whole
    grid: :math:`-\mathrm{expm1}(\log \mathrm{CDF}(k))`, in float64 so that tails down to
    ~1e-13 are resolved."""
    return -torch.expm1(torch.logcumsumexp(log_pmf.double(), dim=-1))


def truncation_point(log_pmf_on, lower, tail_mass, guess, upper_limit=None):
    """The smallest ``K ≥ lower`` whose upper tail ``P(N > K)`` is below ``tail_mass`` for every
    batch element.

    ``log_pmf_on(values)`` returns the log-pmf (``-inf`` off the support) on a 1-D grid of
    values, with the grid on the last axis. The grid starts at ``lower`` and ends at ``guess``,
    and doubles until the tail condition holds (or reaches ``upper_limit``, the end of a finite
    support): the work is ``batch × K`` up to the constant of the guess. One host
    synchronisation: ``K`` is a shape.
    """
    end = max(int(guess), lower + 1)
    while True:
        if upper_limit is not None:
            end = min(end, int(upper_limit))
        values = torch.arange(lower, end + 1, dtype=torch.float64)
        tail = upper_tail_mass(log_pmf_on(values))
        small = (tail < tail_mass).reshape(-1, tail.shape[-1]).all(0)
        if bool(small.any()):
            return lower + int(small.int().argmax())
        if upper_limit is not None and end >= upper_limit:
            return int(upper_limit)
        end = 2 * end + 1


def log_elementary_symmetric_table(logits, k):
    r"""The table :math:`E_{i,j} = \log e_j(e^{\theta_1}, \dots, e^{\theta_i})` for
    :math:`i = 0..n`, :math:`j = 0..k`, by the O(n·k) log-space recursion

    .. math:: E_{i,j} = \mathrm{logaddexp}(E_{i-1,j},\; E_{i-1,j-1} + \theta_i),
        \qquad E_{i,0} = 0,\ E_{i,i} = E_{i-1,i-1} + \theta_i,

    stable for logits of any magnitude (no exponential is formed). Shape ``(n + 1, ..., k + 1)``
    with the batch in the middle; :math:`E_{i,j} = -\infty` for :math:`j > i`. Only the possible
    entries are ever combined, so the table is differentiable twice without NaN (``logaddexp``
    with an infinite operand has NaN second derivatives).
    """
    row = torch.zeros(logits.shape[:-1] + (1,), dtype=logits.dtype, device=logits.device)
    rows = [row]
    for i in range(logits.shape[-1]):
        item = logits[..., i : i + 1]
        middle = torch.logaddexp(row[..., 1:], row[..., :-1] + item)
        parts = [row[..., :1], middle] + ([row[..., -1:] + item] if row.shape[-1] <= k else [])
        row = torch.cat(parts, dim=-1)
        rows.append(row)
    width = k + 1
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=-torch.inf) for r in rows])


def log_elementary_symmetric(logits, k):
    r""":math:`\log e_k(e^{\theta})` over the last axis: the log-partition function of the k-subset
    family :math:`p(z) \propto \exp\langle z, \theta \rangle`."""
    return log_elementary_symmetric_table(logits, k)[-1][..., k]


def subset_from_uniform(logits, k, uniform):
    r"""An exact draw of a k-subset of :math:`p(z) \propto \exp\langle z, \theta\rangle`, as a k-hot
    vector, by walking the recursion's table backwards: item :math:`i` is taken with probability
    :math:`\exp(\theta_i + E_{i-1,j-1} - E_{i,j})` given that :math:`j` items remain to take.
    ``uniform`` has the shape of ``logits`` (one uniform per item)."""
    with torch.no_grad():
        table = log_elementary_symmetric_table(logits, k)
        n = logits.shape[-1]
        remaining = torch.full(logits.shape[:-1] + (1,), k, dtype=torch.long, device=logits.device)
        sample = torch.zeros_like(logits)
        for i in range(n, 0, -1):
            current = table[i].gather(-1, remaining)
            previous = table[i - 1].gather(-1, (remaining - 1).clamp(min=0))
            log_take = logits[..., i - 1 : i] + previous - current
            take = (remaining > 0) & (uniform[..., i - 1 : i].log() < log_take)
            sample[..., i - 1 : i] = take.to(sample.dtype)
            remaining = remaining - take.long()
        return sample


def top_k_one_hot(scores, k):
    """The k-hot vector of the ``k`` largest scores on the last axis (the MAP of a k-subset)."""
    return torch.zeros_like(scores).scatter_(-1, scores.topk(k, dim=-1).indices, 1.0)
