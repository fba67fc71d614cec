"""Pure-math helpers for the PyTorch backend: written once here, used by every estimator."""

import torch

from redge_core import subsets


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
    # Only a NaN row (NaN or +inf logits) can search past the end; its sample is made NaN by the caller.
    return torch.searchsorted(cdf, threshold.contiguous(), right=True).clamp_(max=max(probs.shape[-1] - 1, 0))


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


def log_elementary_symmetric_table(logits, k):
    r"""The table :math:`E_{i,j} = \log e_j(e^{\theta_1}, \dots, e^{\theta_i})` for
    :math:`i = 0..n`, :math:`j = 0..k`, by the O(n·k) log-space recursion

    .. math:: E_{i,j} = \mathrm{logaddexp}(E_{i-1,j},\; E_{i-1,j-1} + \theta_i),
        \qquad E_{i,0} = 0,\ E_{i,i} = E_{i-1,i-1} + \theta_i,

    stable for logits of any magnitude (no exponential is formed): what :func:`subset_from_uniform`
    walks back, without gradient (the log-normaliser and its derivatives come from
    :func:`log_elementary_symmetric`). Shape ``(n + 1, ..., k + 1)`` with the batch in the middle;
    :math:`E_{i,j} = -\infty` where no j-subset of the first i items has positive weight
    (:math:`j > i`, or more than the unmasked items). Impossible entries and masked (``-inf``)
    logits are held, inside the recursion, at a quarter of the dtype's lowest finite value (the row
    is clamped there, so that sums of them cannot overflow). One recursion for masked and unmasked
    logits alike (as in JAX): choosing a path by whether any logit is masked would read a value on
    the host at every call.
    """
    masked = logits == -torch.inf
    impossible = torch.finfo(logits.dtype).min / 4
    items = torch.where(masked, impossible, logits)
    batch = logits.shape[:-1]
    row = torch.cat(
        [
            torch.zeros(batch + (1,), dtype=logits.dtype, device=logits.device),
            torch.full(batch + (k,), impossible, dtype=logits.dtype, device=logits.device),
        ],
        dim=-1,
    )
    edge = torch.full(batch + (1,), impossible, dtype=logits.dtype, device=logits.device)
    rows = [row]
    for i in range(logits.shape[-1]):
        shifted = torch.cat([edge, row[..., :-1] + items[..., i : i + 1]], dim=-1)
        row = torch.logaddexp(row, shifted).clamp(min=impossible)
        rows.append(row)
    unmasked = torch.cat(
        [torch.zeros((1,) + batch, dtype=torch.long, device=logits.device), (~masked).long().movedim(-1, 0).cumsum(0)]
    )
    possible = torch.arange(k + 1, device=logits.device) <= unmasked.unsqueeze(-1)
    return torch.where(possible, torch.stack(rows), -torch.inf)


class _SlidingDot(torch.autograd.Function):
    r"""``out[..., j] = Σ_t x[..., j + t] · w[..., t]`` for ``j < length`` (``x`` read as zero past
    its end). Its derivatives are themselves sliding dot products, so the backward pass never forms
    the ``length × len(w)`` outer product that autograd through ``unfold`` would, and it stays
    differentiable to any order."""

    @staticmethod
    def forward(ctx, x, w, length):
        ctx.save_for_backward(x, w)
        return _sliding_dot_values(x, w, length)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        # d/dx[i] = Σ_j grad[j] w[i - j] (a convolution); d/dw[t] = Σ_j grad[j] x[j + t].
        grad_x = convolve(grad, w, x.shape[-1]) if ctx.needs_input_grad[0] else None
        grad_w = sliding_dot(x, grad, w.shape[-1]) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


def _sliding_dot_values(x, w, length):
    width = w.shape[-1]
    padded = torch.nn.functional.pad(x, (0, max(0, length + width - 1 - x.shape[-1])))
    windows = padded.unfold(-1, width, 1)[..., :length, :]
    return (windows @ w.unsqueeze(-1)).squeeze(-1)


def sliding_dot(x, w, length):
    """``out[..., j] = Σ_t x[..., j + t] · w[..., t]`` for ``j < length`` (``x`` zero past its end)."""
    return _SlidingDot.apply(x, w, length)


def convolve(p, q, length):
    """The first ``length`` coefficients of the product of the polynomials ``p`` and ``q``
    (coefficients on the last axis, batch axes broadcast)."""
    return sliding_dot(torch.nn.functional.pad(p, (q.shape[-1] - 1, 0)), q.flip(-1), length)


def log_elementary_symmetric(logits, k):
    r""":math:`\log e_k(e^{\theta})` over the last axis, the log-partition function of the k-subset
    family, as a tilted Poisson-binomial probability multiplied out in a tree of polynomial
    products (:mod:`redge_core.subsets` explains the identity and its plan): O(n·k) work, O(log n)
    steps, exact derivatives to any order, ``-inf`` where fewer than ``k`` items are unmasked.
    Computed in at least float32."""
    theta = logits.to(compute_dtype(logits.dtype))
    masked = theta == -torch.inf
    tilt = _tilt(theta, masked, k)
    shifted = theta - tilt
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), with the k·a of the identity cancelled against the
    # a of the items above the tilt: no large terms that cancel (k·a alone can be far larger).
    above = shifted > 0
    polynomials = torch.stack([torch.sigmoid(-shifted), torch.sigmoid(shifted)], -1)
    for padded, length in subsets.product_tree_levels(polynomials.shape[-2], k):
        if padded:
            one = torch.zeros_like(polynomials[..., :1, :])
            one[..., 0] = 1.0
            polynomials = torch.cat([polynomials, one], -2)
        polynomials = convolve(polynomials[..., 0::2, :], polynomials[..., 1::2, :], length)
    possible = (~masked).sum(-1) >= k
    probability = torch.where(possible, polynomials[..., 0, k], 1.0)
    value = (
        torch.where(above, theta, 0.0).sum(-1)
        + (k - above.sum(-1)) * tilt.squeeze(-1)
        + torch.log1p(torch.exp(-shifted.abs())).sum(-1)
        + probability.log()
    )
    return torch.where(possible, value, -torch.inf).to(logits.dtype)


def _tilt(theta, masked, k):
    r"""The :math:`a` at which :math:`\sum_i \sigma(\theta_i - a) = k`, by
    :data:`redge_core.subsets.TILT_BISECTION_STEPS` bisection steps without gradient (no host
    synchronisation), shape ``(..., 1)``."""
    with torch.no_grad():
        margin = subsets.tilt_margin(theta.shape[-1])
        low = torch.where(masked, torch.inf, theta).amin(-1, keepdim=True) - margin
        high = torch.where(masked, -torch.inf, theta).amax(-1, keepdim=True) + margin
        low = torch.where(torch.isfinite(low), low, 0.0)  # every item masked: any a will do
        high = torch.where(torch.isfinite(high), high, 0.0)
        for _ in range(subsets.TILT_BISECTION_STEPS):
            middle = (low + high) / 2
            too_low = torch.sigmoid(theta - middle).sum(-1, keepdim=True) > k
            low = torch.where(too_low, middle, low)
            high = torch.where(too_low, high, middle)
        return (low + high) / 2


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
