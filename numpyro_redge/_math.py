"""Pure-math helpers for the JAX backend: written once here, used by every estimator."""

import functools
import math

import jax
import jax.numpy as jnp

from redge_core import subsets
from redge_core.category_tree import tree_descent, tree_levels


def compute_dtype(dtype):
    """The floating dtype the estimators compute in: at least float32, so that half-precision
    logits still give accurate probabilities and cumulative sums; the hard sample and the
    gradient are returned in the caller's dtype."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"logits must have a floating dtype, got {dtype}")
    return jnp.promote_types(dtype, jnp.float32)


def softmax_vjp(probs, cotangent):
    r"""Vector-Jacobian product of the softmax at ``probs``:
    :math:`J(\pi)^\top g = \pi \odot (g - \langle \pi, g \rangle)`."""
    return probs * (cotangent - (probs * cotangent).sum(-1, keepdims=True))


def categorical_from_uniform(probs, uniform):
    """Index (..., 1) of a draw from ``Cat(probs)`` by inverse CDF, with one uniform in [0, 1)
    per row.

    ``probs`` (..., K) need not be normalised. The threshold is kept strictly below the total
    mass, so the chosen category is the first whose cumulative mass exceeds it and always has
    positive probability: a masked (zero-probability) category is never returned.
    """
    # XLA's CPU cumsum is sequential per row; the associative scan is about twice as fast at K = 10⁴.
    cdf = jax.lax.associative_scan(jnp.add, probs, axis=-1)
    total = cdf[..., -1:]
    threshold = jnp.minimum(uniform * total, jnp.nextafter(total, jnp.zeros_like(total)))
    # The number of cumulative masses ≤ threshold is the first index whose mass exceeds it.
    return (cdf <= threshold).sum(-1, keepdims=True)


def one_hot(index, like):
    """Bitwise one-hot of ``index`` (..., 1) in the shape and dtype of ``like``."""
    return jax.nn.one_hot(index[..., 0], like.shape[-1], dtype=like.dtype)


def sample_uniform(key, logits, dtype):
    """One uniform per row of ``logits``, for inverse-CDF sampling."""
    return jax.random.uniform(key, jnp.shape(logits)[:-1] + (1,), dtype=dtype)


def sample_exponential(key, shape, dtype):
    """Standard exponentials, never 0: ``-log U`` with ``U`` uniform on ``[tiny, 1)``.
    ``jax.random.exponential`` returns exactly 0 with probability about ``2^-24`` in float32
    (``-log1p(-U)`` at ``U = 0``), and a zero exponential is an infinite conditional Gumbel in
    :class:`~numpyro_redge.GumbelRao` (a NaN gradient after tens of millions of draws; PyTorch's
    ``exponential_`` excludes 0). The tail is cut at ``-log(tiny)`` (87 in float32), where the
    exponential's mass is ``tiny``."""
    return -jnp.log(jax.random.uniform(key, shape, dtype=dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0))


def sample_gumbel(key, shape, dtype):
    """Standard Gumbel noise."""
    return jax.random.gumbel(key, shape, dtype=dtype)


def sample_gamma(key, concentration, shape, dtype):
    r"""Standard Gamma draws of one static ``concentration`` :math:`\alpha > 0` (a Python float), by
    Marsaglia and Tsang's rejection from :math:`d(1 + cx)^3`, :math:`x \sim \mathcal N(0, 1)`,
    with :math:`\mathrm{Gamma}(\alpha) = \mathrm{Gamma}(\alpha + 1)\,U^{1/\alpha}` below one.

    The same law as ``jax.random.gamma`` (other draws for a key). Whole arrays of proposals are
    drawn until every element has accepted one (each keeps its first accepted proposal, so each
    is an exact rejection sample): a few vectorised rounds instead of ``jax.random.gamma``'s
    per-element loop, which is several times slower on CPU for the millions of draws of
    Sum-of-Gamma noise, and far slower to compile.

    **References**

    [1] `A Simple Method for Generating Gamma Variables`, George Marsaglia, Wai Wan Tsang (ACM TOMS 2000)
    """
    boosted = concentration < 1
    d = (concentration + 1.0 if boosted else concentration) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    key, boost_key = jax.random.split(key)

    def propose(state):
        key, value, accepted = state
        key, normal_key, uniform_key = jax.random.split(key, 3)
        x = jax.random.normal(normal_key, shape, dtype)
        u = jax.random.uniform(uniform_key, shape, dtype)
        v = (1.0 + c * x) ** 3
        positive_v = jnp.where(v > 0, v, 1.0)
        accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * positive_v + d * jnp.log(positive_v))
        return key, jnp.where(accept & ~accepted, d * positive_v, value), accepted | accept

    start = (key, jnp.zeros(shape, dtype), jnp.zeros(shape, bool))
    _, value, _ = jax.lax.while_loop(lambda state: ~jnp.all(state[2]), propose, start)
    if boosted:
        value = value * jnp.exp(jnp.log(jax.random.uniform(boost_key, shape, dtype)) / concentration)
    return value


def safe_log(probs):
    """``log(probs)``, exactly ``-inf`` where a probability is zero, with a zero (not NaN)
    gradient there; nothing is clamped."""
    positive = probs > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, probs, 1.0)), -jnp.inf)


def expected_log_prob(value, log_probs):
    r"""``Σ_k value_k · log_probs_k`` over the last axis: the exact log-pmf of a one-hot ``value``,
    multilinear (hence differentiable) in the value. A category of probability zero contributes
    nothing where the value is zero (not ``0 · −∞ = NaN``) and ``−∞`` where it is not."""
    absent = (value == 0) & (log_probs == -jnp.inf)
    return (value * jnp.where(absent, 0.0, log_probs)).sum(-1)


def categorical_kl(log_p, log_q):
    r"""Exact :math:`\mathrm{KL}(p\,\|\,q) = \sum_k p_k (\log p_k - \log q_k)` from normalised
    log-probabilities on the last axis; ``inf`` where ``p`` charges a category ``q`` does not."""
    p = jnp.exp(log_p)
    impossible = log_p == -jnp.inf
    difference = jnp.where(impossible, 0.0, log_p - jnp.where(impossible, 0.0, log_q))
    return (p * difference).sum(-1)


def tree_log_odds(logits):
    r"""The log-odds (..., K − 1) of the right branch at each node of the category tree of
    :mod:`redge_core.category_tree`, level 1 first, from logits (..., K). A node whose two branches
    both have probability zero gets log-odds 0 (it is never reached), and the derivatives are
    exactly zero there, not NaN."""
    values, log_odds = logits, []
    for pairs in tree_levels(jnp.shape(logits)[-1]):
        left, right = values[..., 0 : 2 * pairs : 2], values[..., 1 : 2 * pairs : 2]
        unreachable = (left == -jnp.inf) & (right == -jnp.inf)
        left, right = jnp.where(unreachable, 0.0, left), jnp.where(unreachable, 0.0, right)
        log_odds.append(right - left)
        merged = jnp.where(unreachable, -jnp.inf, jnp.logaddexp(left, right))
        values = jnp.concatenate([merged, values[..., 2 * pairs :]], axis=-1)
    return jnp.concatenate(log_odds, axis=-1) if log_odds else logits[..., :0]


def categorical_from_tree(log_odds, uniform):
    """Index (..., 1) of the category reached from the root of the category tree by the bits
    ``uniform < σ(log_odds)`` (both (..., K − 1), as :func:`tree_log_odds` lays the nodes out)."""
    # A branch of probability 1 is taken whatever the uniform: the partner's 1 − u reaches 1 when u = 0.
    bits = jnp.where(jnp.isinf(log_odds), log_odds > 0, uniform < jax.nn.sigmoid(log_odds)).astype(jnp.int32)
    position = jnp.zeros(jnp.shape(log_odds)[:-1] + (1,), dtype=jnp.int32)
    for pairs, start in tree_descent(jnp.shape(log_odds)[-1] + 1):
        bit = jnp.take_along_axis(bits, start + jnp.minimum(position, pairs - 1), axis=-1)
        position = 2 * position + jnp.where(position < pairs, bit, 0)
    return position


def sliding_dot(x, w, length):
    """``out[..., j] = Σ_t x[..., j + t] · w[..., t]`` for ``j < length`` (``x`` zero past its end)."""
    return _sliding_dot(x, w, length)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _sliding_dot(x, w, length):
    width = w.shape[-1]
    size = length + width - 1
    batch = jnp.broadcast_shapes(x.shape[:-1], w.shape[:-1])
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, max(0, size - x.shape[-1]))])[..., :size]
    padded, w = jnp.broadcast_to(padded, batch + (size,)), jnp.broadcast_to(w, batch + (width,))
    if width <= _SHIFTED_SUM_WIDTH:
        return sum(padded[..., t : t + length] * w[..., t : t + 1] for t in range(width))

    # Wider: a loop over the weights, each adding one shifted slice (measured on CPU at n = 10^4,
    # k = 10^3: 7x faster than a gather of the windows and a batched matrix-vector product in
    # float64, 2x faster than a depthwise convolution in float32, which has no fast float64 kernel).
    def add_slice(t, out):
        piece = jax.lax.dynamic_slice_in_dim(padded, t, length, axis=-1)
        return out + piece * jax.lax.dynamic_slice_in_dim(w, t, 1, axis=-1)

    return jax.lax.fori_loop(0, width, add_slice, jnp.zeros(batch + (length,), padded.dtype))


#: Up to this many weights the shifted slices are summed unrolled (fewer steps than a loop).
_SHIFTED_SUM_WIDTH = 8


def _sliding_dot_forward(x, w, length):
    return _sliding_dot(x, w, length), (x, w)


def _sliding_dot_backward(length, residuals, grad):
    # The derivatives are sliding dot products again (never the length × width outer product), so
    # the backward pass is as cheap as the forward and itself differentiable.
    x, w = residuals
    grad_x = convolve(grad, w, x.shape[-1])
    grad_w = sliding_dot(x, grad, w.shape[-1])
    return _sum_to_shape(grad_x, x.shape), _sum_to_shape(grad_w, w.shape)


def _sum_to_shape(value, shape):
    extra = value.ndim - len(shape)
    value = value.sum(tuple(range(extra))) if extra else value
    axes = tuple(i for i, (have, want) in enumerate(zip(value.shape, shape, strict=True)) if want == 1 and have != 1)
    return value.sum(axes, keepdims=True) if axes else value


_sliding_dot.defvjp(_sliding_dot_forward, _sliding_dot_backward)


def convolve(p, q, length):
    """The first ``length`` coefficients of the product of the polynomials ``p`` and ``q``
    (coefficients on the last axis, batch axes broadcast)."""
    padded = jnp.pad(p, [(0, 0)] * (p.ndim - 1) + [(q.shape[-1] - 1, 0)])
    return sliding_dot(padded, jnp.flip(q, -1), length)


@functools.partial(jax.jit, static_argnums=(1,))
def log_elementary_symmetric(logits, k):
    r""":math:`\log e_k(e^{\theta})` over the last axis, the log-partition function of the k-subset
    family, as a tilted Poisson-binomial probability multiplied out in a tree of polynomial
    products (:mod:`redge_core.subsets` explains the identity and its plan): O(n·k) work, O(log n)
    steps, exact derivatives to any order, ``-inf`` where fewer than ``k`` items are unmasked.
    Computed in at least float32."""
    theta = logits.astype(compute_dtype(logits.dtype))
    masked = theta == -jnp.inf
    tilt = _tilt(jax.lax.stop_gradient(theta), masked, k)
    shifted = theta - tilt
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), with the k·a of the identity cancelled against the
    # a of the items above the tilt: no large terms that cancel (k·a alone can be far larger).
    above = shifted > 0
    _, polynomials = _product_tree(jnp.stack([jax.nn.sigmoid(-shifted), jax.nn.sigmoid(shifted)], -1), k)
    possible = jnp.sum(~masked, -1) >= k
    probability = jnp.where(possible, polynomials[..., 0, k], 1.0)
    value = (
        jnp.where(above, theta, 0.0).sum(-1)
        + (k - above.sum(-1)) * tilt[..., 0]
        + jnp.log1p(jnp.exp(-jnp.abs(shifted))).sum(-1)
        + jnp.log(probability)
    )
    return jnp.where(possible, value, -jnp.inf).astype(logits.dtype)


@functools.partial(jax.jit, static_argnums=(1,))
def inclusion_probabilities(logits, k):
    r"""The k-subset family's marginals :math:`\nabla_\theta \log e_k(e^{\theta})` (differentiable),
    compiled with the log-normaliser as one program per shape and ``k``."""
    return jax.grad(lambda theta: log_elementary_symmetric(theta, k).sum())(logits)


def _product_tree(polynomials, k):
    """The pairwise product tree of the degree-1 ``polynomials`` (shape ``(..., n, 2)``) truncated
    at degree ``k``, planned by :func:`redge_core.subsets.product_tree_levels`: the ``(left, right,
    padded)`` children of each level's products, bottom-up, and the root's coefficients (shape
    ``(..., 1, k + 1)`` for ``n > 1``)."""
    merges = []
    for padded, length in subsets.product_tree_levels(polynomials.shape[-2], k):
        if padded:
            one = jnp.zeros_like(polynomials[..., :1, :]).at[..., 0].set(1.0)
            polynomials = jnp.concatenate([polynomials, one], -2)
        left, right = polynomials[..., 0::2, :], polynomials[..., 1::2, :]
        merges.append((left, right, padded))
        polynomials = convolve(left, right, length)
    return merges, polynomials


def _tilt(theta, masked, k):
    r"""The :math:`a` at which :math:`\sum_i \sigma(\theta_i - a) = k`, by
    :data:`redge_core.subsets.TILT_BISECTION_STEPS` bisection steps (``theta`` without gradient),
    shape ``(..., 1)``."""
    margin = subsets.tilt_margin(theta.shape[-1])
    low = jnp.where(masked, jnp.inf, theta).min(-1, keepdims=True) - margin
    high = jnp.where(masked, -jnp.inf, theta).max(-1, keepdims=True) + margin
    low = jnp.where(jnp.isfinite(low), low, 0.0)  # every item masked: any a will do
    high = jnp.where(jnp.isfinite(high), high, 0.0)

    def bisect(_, bracket):
        low, high = bracket
        middle = (low + high) / 2
        too_low = jax.nn.sigmoid(theta - middle).sum(-1, keepdims=True) > k
        return jnp.where(too_low, middle, low), jnp.where(too_low, high, middle)

    low, high = jax.lax.fori_loop(0, subsets.TILT_BISECTION_STEPS, bisect, (low, high))
    return (low + high) / 2


@functools.partial(jax.jit, static_argnums=(1,))
def subset_from_uniform(logits, k, uniform):
    r"""An exact draw of a k-subset of :math:`p(z) \propto \exp\langle z, \theta\rangle`, as a k-hot
    vector, top-down through the product tree of :func:`log_elementary_symmetric` (see
    :mod:`redge_core.subsets`): the k-subset law is the tilted Bernoulli law given :math:`S = k`, so
    each node of the tree, holding :math:`m` of the items to take, gives :math:`j` of them to its
    left child with probability :math:`\propto L_j R_{m-j}` (the children's polynomial
    coefficients), down to the items. O(n·k) work in O(log n) vectorised steps; one uniform per
    node with two children (``n - 1`` of ``uniform``'s ``n``, which has the shape of ``logits``)."""
    theta = jax.lax.stop_gradient(logits).astype(compute_dtype(logits.dtype))
    masked = theta == -jnp.inf
    shifted = theta - _tilt(theta, masked, k)
    merges, _ = _product_tree(jnp.stack([jax.nn.sigmoid(-shifted), jax.nn.sigmoid(shifted)], -1), k)
    counts = jnp.full(theta.shape[:-1] + (1,), k, dtype=jnp.int32)
    used = 0
    for left, right, padded in reversed(merges):
        splits = left.shape[-2] - padded  # a padded parent's right child is the constant 1
        node_uniform = uniform[..., used : used + splits].astype(theta.dtype)
        used += splits
        if padded:
            node_uniform = jnp.concatenate([node_uniform, jnp.zeros_like(node_uniform[..., :1])], -1)
        to_left = jnp.arange(left.shape[-1])
        to_right = counts[..., None] - to_left
        possible = (to_right >= 0) & (to_right < right.shape[-1])
        gathered = jnp.take_along_axis(right, jnp.clip(to_right, 0, right.shape[-1] - 1), axis=-1)
        cumulative = jnp.cumsum(left * gathered * possible, axis=-1)
        chosen = (cumulative <= node_uniform[..., None] * cumulative[..., -1:]).sum(-1, dtype=jnp.int32)
        chosen = jnp.minimum(chosen, left.shape[-1] - 1)
        counts = jnp.stack([chosen, counts - chosen], -1).reshape(counts.shape[:-1] + (2 * counts.shape[-1],))
        if padded:
            counts = counts[..., :-1]
    return counts.astype(logits.dtype)


def top_k_one_hot(scores, k):
    """The k-hot vector of the ``k`` largest scores on the last axis (the MAP of a k-subset)."""
    _, indices = jax.lax.top_k(scores, k)
    # A scatter of k ones per row: summing k one-hot rows would build a batch × k × n array.
    return jnp.put_along_axis(jnp.zeros_like(scores), indices, jnp.ones((), scores.dtype), axis=-1, inplace=False)
