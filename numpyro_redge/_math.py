"""Pure-math helpers for the JAX backend: written once here, used by every estimator."""

import functools

import jax
import jax.numpy as jnp


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


def sample_gumbel(key, shape, dtype):
    """Standard Gumbel noise."""
    return jax.random.gumbel(key, shape, dtype=dtype)


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


@jax.custom_jvp
def _logaddexp(a, b):
    return jnp.logaddexp(a, b)


@_logaddexp.defjvp
def _logaddexp_jvp(primals, tangents):
    # The weights are sigmoids of the difference, not ``exp(a - logaddexp(a, b))`` as in
    # ``jnp.logaddexp``: they do not inherit the rounding of the (large) output, which made float32
    # marginals drift by 1e-4 over thousands of items, and their derivatives stay finite for any
    # finite operands, which made the second derivatives of the recursion NaN at n = 300.
    a, b = primals
    ta, tb = tangents
    return _logaddexp(a, b), ta * jax.nn.sigmoid(a - b) + tb * jax.nn.sigmoid(b - a)


def log_elementary_symmetric_table(logits, k):
    r"""The table :math:`E_{i,j} = \log e_j(e^{\theta_1}, \dots, e^{\theta_i})` for
    :math:`i = 0..n`, :math:`j = 0..k`, by the O(n·k) log-space recursion

    .. math:: E_{i,j} = \mathrm{logaddexp}(E_{i-1,j},\; E_{i-1,j-1} + \theta_i),
        \qquad E_{0,0} = 0,

    as a ``lax.scan`` over the items; stable for logits of any magnitude. Shape
    ``(n + 1, ..., k + 1)`` with the batch in the middle; :math:`E_{i,j} = -\infty` where no
    j-subset of the first i items has positive weight (:math:`j > i`, or more than the unmasked
    items). Inside the scan the impossible entries and masked (``-inf``) logits hold a quarter of
    the dtype's lowest finite value (their exponential is exactly 0, and the row is clamped there
    so that sums of them cannot overflow), so that the recursion stays twice differentiable and a
    masked item gets exactly zero derivatives.
    """
    impossible = jnp.finfo(logits.dtype).min / 4
    batch = logits.shape[:-1]
    masked = logits == -jnp.inf
    items = jnp.where(masked, impossible, logits)
    first = jnp.concatenate(
        [jnp.zeros(batch + (1,), logits.dtype), jnp.full(batch + (k,), impossible, logits.dtype)], axis=-1
    )

    def step(row, item):
        shifted = jnp.concatenate(
            [jnp.full(batch + (1,), impossible, logits.dtype), row[..., :-1] + item[..., None]], axis=-1
        )
        row = jnp.maximum(_logaddexp(row, shifted), impossible)
        return row, row

    _, rows = jax.lax.scan(step, first, jnp.moveaxis(items, -1, 0))
    table = jnp.concatenate([first[None], rows], axis=0)
    unmasked = jnp.concatenate(
        [jnp.zeros((1,) + batch, jnp.int32), jnp.cumsum(~jnp.moveaxis(masked, -1, 0), axis=0, dtype=jnp.int32)]
    )
    possible = jnp.arange(k + 1) <= unmasked[..., None]
    return jnp.where(possible, table, -jnp.inf)


def log_elementary_symmetric(logits, k):
    r""":math:`\log e_k(e^{\theta})` over the last axis: the log-partition function of the k-subset
    family :math:`p(z) \propto \exp\langle z, \theta \rangle`."""
    return log_elementary_symmetric_table(logits, k)[-1][..., k]


@functools.partial(jax.jit, static_argnums=(1,))
def subset_from_uniform(logits, k, uniform):
    r"""An exact draw of a k-subset of :math:`p(z) \propto \exp\langle z, \theta\rangle`, as a k-hot
    vector, by walking the recursion's table backwards: item :math:`i` is taken with probability
    :math:`\exp(\theta_i + E_{i-1,j-1} - E_{i,j})` given that :math:`j` items remain to take.
    ``uniform`` has the shape of ``logits`` (one uniform per item)."""
    logits = jax.lax.stop_gradient(logits)
    table = log_elementary_symmetric_table(logits, k)
    n = logits.shape[-1]

    def step(remaining, i):
        current = jnp.take_along_axis(table[i], remaining[..., None], axis=-1)[..., 0]
        previous = jnp.take_along_axis(table[i - 1], jnp.maximum(remaining - 1, 0)[..., None], axis=-1)[..., 0]
        log_take = logits[..., i - 1] + previous - current
        take = (remaining > 0) & (jnp.log(uniform[..., i - 1]) < log_take)
        return remaining - take.astype(remaining.dtype), take

    remaining = jnp.full(logits.shape[:-1], k, dtype=jnp.int32)
    _, taken = jax.lax.scan(step, remaining, jnp.arange(n, 0, -1))
    return jnp.moveaxis(taken[::-1], 0, -1).astype(logits.dtype)


def top_k_one_hot(scores, k):
    """The k-hot vector of the ``k`` largest scores on the last axis (the MAP of a k-subset)."""
    _, indices = jax.lax.top_k(scores, k)
    # A scatter of k ones per row: summing k one-hot rows would build a batch × k × n array.
    return jnp.put_along_axis(jnp.zeros_like(scores), indices, jnp.ones((), scores.dtype), axis=-1, inplace=False)
