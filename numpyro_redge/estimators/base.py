"""The estimator protocol shared by every gradient estimator of the JAX backend."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_redge._math import compute_dtype
from redge_core.estimator_options import check_subset_size, no_subsets_message


@dataclasses.dataclass(frozen=True)
class Estimator:
    r"""A gradient estimator for a discrete variable: an immutable, hashable object (usable as
    static data of a pytree or a ``jit`` argument) that turns logits :math:`\theta` (categories or
    items on the last axis, any batch shape) into a *hard* sample whose backward pass is a
    surrogate Jacobian: a one-hot vector for ``k = 1`` (a categorical), a k-hot vector for
    ``k > 1`` (a k-subset, for the estimators with :attr:`supports_subsets`).

    One method family covers both cases:

    - :meth:`sample_noise` ``(key, logits, k=1)`` draws the noise from the PRNG ``key``;
    - :meth:`apply` ``(logits, *noise, k=1)`` is deterministic given the noise, which lets the
      tests feed the same noise to this backend, to the PyTorch one and to the reference packages;
    - ``estimator(key, logits, k=1)`` is :meth:`apply` of fresh noise.

    ``k`` is static (a Python integer). An estimator without subsets raises a ``ValueError``
    naming ``k`` for ``k != 1``.

    **Invalid logits.** Logits need at least one dimension (the categories) and a floating dtype;
    ``-inf`` masks a category (never drawn, exactly zero gradient). A NaN or ``+inf`` logit never
    becomes a plausible sample: the functional form ``estimator(key, logits)`` checks concrete
    logits and raises a ``ValueError`` naming ``logits``; under ``jit`` (traced logits) and in
    :meth:`apply`, every row that has a NaN or ``+inf`` logit is NaN in the sample. Empty batches
    (a dimension of size 0) give empty samples and gradients.

    **Example**

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_redge import StraightThrough
    >>> estimator = StraightThrough()
    >>> key, logits = jax.random.PRNGKey(0), jnp.zeros((4, 3))
    >>> noise = estimator.sample_noise(key, logits)  # from the key
    >>> bool(jnp.array_equal(estimator.apply(logits, *noise), estimator.apply(logits, *noise)))
    True
    """

    #: Whether ``k > 1`` (k-subsets by top-k or exact sampling) is defined; see :class:`~numpyro_redge.KSubset`.
    supports_subsets = False
    #: Whether a k-subset draw (``k > 1``) follows the k-subset distribution exactly (otherwise it is
    #: perturb-and-MAP, whose law differs: ``KSubset`` warns).
    exact_subsets = False
    #: Whether a count distribution (:class:`~numpyro_redge.Poisson`, ...: a categorical over a window of
    #: counts) may use the estimator; ``False`` for :class:`DisARM`, whose pair estimate the ELBO
    #: forms for Bernoulli and one-hot categorical sites only.
    supports_counts = True
    #: Whether a call returns one sample per logits row (a distribution needs that).
    one_sample_per_call = True
    #: Whether the sample carries a pathwise (surrogate) gradient; ``False`` for the score-function
    #: estimators (:class:`RLOO`, :class:`DisARM`), whose distributions are not reparameterized.
    pathwise = True
    #: Whether a draw depends on a context besides its arguments (DisARM's antithetic pairing),
    #: which a compiled draw, cached per estimator and shape, would not see change. (AIMLE, which
    #: reads the statistics group, has its own step-by-step ``__call__`` for its ``beta``.)
    _draw_reads_context = False

    def __call__(self, key, logits, k=1):
        """A hard sample of ``logits`` (one-hot for ``k = 1``, k-hot otherwise) with the surrogate
        gradient, from noise drawn from ``key``."""
        logits = jnp.asarray(logits)
        check_finite_logits(logits)
        return (_draw if self._draw_reads_context else _compiled_draw)(self, key, logits, k)

    def sample_noise(self, key, logits, k=1):
        """The noise arrays :meth:`apply` consumes for ``logits`` and ``k``, drawn from ``key``."""
        raise NotImplementedError

    def apply(self, logits, *noise, k=1):
        """The hard sample for ``logits`` and ``noise`` (one-hot for ``k = 1``, k-hot otherwise),
        with the surrogate gradient."""
        raise NotImplementedError

    def _check_k(self, k, logits):
        shape = jnp.shape(logits)
        if not shape:
            raise ValueError(
                "logits must have at least one dimension (the categories or items are on the last axis), "
                "got a 0-dimensional array"
            )
        check_subset_size(type(self).__name__, self.supports_subsets, k, shape[-1])

    @classmethod
    def _no_subsets(cls):
        return no_subsets_message(cls.__name__)

    @staticmethod
    def _noise_dtype(logits):
        return compute_dtype(jnp.result_type(logits))


def _draw(estimator, key, logits, k):
    return estimator.apply(logits, *estimator.sample_noise(key, logits, k=k), k=k)


# Eagerly, JAX compiles every operation of a draw separately for each new shape (tens of small
# programs, ~30 ms each, before the first sample of a new shape); one program per estimator, k and
# shape instead. Under an outer jit, grad or vmap it is inlined. The estimator is static: it is an
# immutable, hashable dataclass, and equal estimators share their programs.
_compiled_draw = jax.jit(_draw, static_argnums=(0, 3))


def zero_cotangent(noise):
    """The cotangent of a noise input: the noise is not differentiated."""
    return jax.tree_util.tree_map(jnp.zeros_like, noise)


def check_finite_logits(logits):
    """A ``ValueError`` naming ``logits`` if a concrete value is NaN or ``+inf`` (``-inf`` masks a
    category); traced logits cannot be checked and go through (see :func:`invalid_rows_to_nan`)."""
    if isinstance(logits, jax.core.Tracer) or not jnp.issubdtype(logits.dtype, jnp.floating):
        return
    invalid = np.isnan(logits) | (np.asarray(logits) == np.inf)
    if invalid.any():
        raise ValueError(
            "logits must be real numbers or -inf (a masked category), got NaN or +inf in "
            f"{int(invalid.any(-1).sum()) if invalid.ndim else 1} row(s)"
        )


def invalid_rows_to_nan(logits, sample):
    """``sample`` with NaN in every row whose logits hold a NaN or ``+inf`` (works under ``jit``):
    such a row must never look like a valid draw."""
    logits = jnp.asarray(logits)
    invalid = jnp.any(jnp.isnan(logits) | (logits == jnp.inf), axis=-1, keepdims=True)
    return jnp.where(invalid, jnp.nan, sample)
