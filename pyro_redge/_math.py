"""Pure-math helpers for the PyTorch backend: written once here, used by every estimator."""

import torch

from redge_core import subsets
from redge_core.category_tree import tree_descent, tree_levels


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


def tree_log_odds(logits):
    r"""The log-odds (..., K − 1) of the right branch at each node of the category tree of
    :mod:`redge_core.category_tree`, level 1 first, from logits (..., K). A node whose two branches
    both have probability zero gets log-odds 0 (it is never reached), and the derivatives are
    exactly zero there, not NaN."""
    values, log_odds = logits, []
    for pairs in tree_levels(logits.shape[-1]):
        left, right = values[..., 0 : 2 * pairs : 2], values[..., 1 : 2 * pairs : 2]
        unreachable = (left == -torch.inf) & (right == -torch.inf)
        left, right = left.masked_fill(unreachable, 0.0), right.masked_fill(unreachable, 0.0)
        log_odds.append(right - left)
        merged = torch.logaddexp(left, right).masked_fill(unreachable, -torch.inf)
        values = torch.cat([merged, values[..., 2 * pairs :]], dim=-1)
    return torch.cat(log_odds, dim=-1) if log_odds else logits[..., :0]


def categorical_from_tree(log_odds, uniform):
    """Index (..., 1) of the category reached from the root of the category tree by the bits
    ``uniform < σ(log_odds)`` (both (..., K − 1), as :func:`tree_log_odds` lays the nodes out)."""
    # A branch of probability 1 is taken whatever the uniform: the partner's 1 − u reaches 1 when u = 0.
    bits = torch.where(log_odds.isinf(), log_odds > 0, uniform < torch.sigmoid(log_odds)).long()
    position = torch.zeros(log_odds.shape[:-1] + (1,), dtype=torch.long, device=log_odds.device)
    for pairs, start in tree_descent(log_odds.shape[-1] + 1):
        bit = bits.gather(-1, start + position.clamp(max=pairs - 1))
        position = 2 * position + torch.where(position < pairs, bit, 0)
    return position


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
    _, polynomials = _product_tree(torch.stack([torch.sigmoid(-shifted), torch.sigmoid(shifted)], -1), k)
    possible = (~masked).sum(-1) >= k
    probability = torch.where(possible, polynomials[..., 0, k], 1.0)
    value = (
        torch.where(above, theta, 0.0).sum(-1)
        + (k - above.sum(-1)) * tilt.squeeze(-1)
        + torch.log1p(torch.exp(-shifted.abs())).sum(-1)
        + probability.log()
    )
    return torch.where(possible, value, -torch.inf).to(logits.dtype)


def _product_tree(polynomials, k):
    """The pairwise product tree of the degree-1 ``polynomials`` (shape ``(..., n, 2)``) truncated
    at degree ``k``, planned by :func:`redge_core.subsets.product_tree_levels`: the ``(left, right,
    padded)`` children of each level's products, bottom-up, and the root's coefficients (shape
    ``(..., 1, k + 1)`` for ``n > 1``)."""
    merges = []
    for padded, length in subsets.product_tree_levels(polynomials.shape[-2], k):
        if padded:
            one = torch.zeros_like(polynomials[..., :1, :])
            one[..., 0] = 1.0
            polynomials = torch.cat([polynomials, one], -2)
        left, right = polynomials[..., 0::2, :], polynomials[..., 1::2, :]
        merges.append((left, right, padded))
        polynomials = convolve(left, right, length)
    return merges, polynomials


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
    vector, top-down through the product tree of :func:`log_elementary_symmetric` (see
    :mod:`redge_core.subsets`): the k-subset law is the tilted Bernoulli law given :math:`S = k`, so
    each node of the tree, holding :math:`m` of the items to take, gives :math:`j` of them to its
    left child with probability :math:`\propto L_j R_{m-j}` (the children's polynomial
    coefficients), down to the items. O(n·k) work in O(log n) vectorised steps; one uniform per
    node with two children (``n - 1`` of ``uniform``'s ``n``, which has the shape of ``logits``)."""
    with torch.no_grad():
        theta = logits.to(compute_dtype(logits.dtype))
        masked = theta == -torch.inf
        shifted = theta - _tilt(theta, masked, k)
        merges, _ = _product_tree(torch.stack([torch.sigmoid(-shifted), torch.sigmoid(shifted)], -1), k)
        counts = torch.full(theta.shape[:-1] + (1,), k, dtype=torch.long, device=theta.device)
        used = 0
        for left, right, padded in reversed(merges):
            splits = left.shape[-2] - int(padded)  # a padded parent's right child is the constant 1
            node_uniform = uniform[..., used : used + splits].to(theta.dtype)
            used += splits
            if padded:
                node_uniform = torch.cat([node_uniform, torch.zeros_like(node_uniform[..., :1])], -1)
            to_left = torch.arange(left.shape[-1], device=theta.device)
            to_right = counts.unsqueeze(-1) - to_left
            possible = (to_right >= 0) & (to_right < right.shape[-1])
            weights = left * right.gather(-1, to_right.clamp(0, right.shape[-1] - 1)) * possible
            cumulative = weights.cumsum(-1)
            chosen = (cumulative <= node_uniform.unsqueeze(-1) * cumulative[..., -1:]).sum(-1)
            chosen = chosen.clamp(max=left.shape[-1] - 1)
            counts = torch.stack([chosen, counts - chosen], -1).reshape(counts.shape[:-1] + (2 * counts.shape[-1],))
            if padded:
                counts = counts[..., :-1]
        return counts.to(logits.dtype)


def top_k_one_hot(scores, k):
    """The k-hot vector of the ``k`` largest scores on the last axis (the MAP of a k-subset)."""
    return torch.zeros_like(scores).scatter_(-1, scores.topk(k, dim=-1).indices, 1.0)
