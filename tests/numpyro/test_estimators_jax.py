"""JAX-only mechanics of the estimators: static ``jit`` arguments, ``vmap``, ``KSubset``'s ``beta`` as
pytree data, and AIMLE's state kept across the steps of a hand-written NumPyro guide."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from numpyro.infer import Trace_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64")


def make(estimator_id, table=cases.ESTIMATORS):
    name, kwargs = table[estimator_id]
    return getattr(numpyro_redge, name)(**kwargs)


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS) + ["aimle"])
def test_estimators_are_static_jit_arguments(estimator_id):
    estimator = make(estimator_id, {**cases.ESTIMATORS, **cases.SUBSET_ESTIMATORS})
    sample = jax.jit(lambda est, key, x: est(key, x), static_argnums=0)(
        estimator, jax.random.PRNGKey(0), jnp.zeros((2, 3))
    )
    assert sample.shape == (2, 3) and bool(jnp.all(sample.sum(-1) == 1))


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_vmap_and_batched_logits(estimator_id):
    estimator = make(estimator_id)
    logits = jax.random.normal(jax.random.PRNGKey(11), (3, 4, 5))
    keys = jax.random.split(jax.random.PRNGKey(12), 3)
    sample = jax.vmap(estimator)(keys, logits)
    assert sample.shape == (3, 4, 5) and bool(jnp.all(sample.sum(-1) == 1))
    grad = jax.grad(lambda x: (jax.vmap(estimator)(keys, x) * jnp.arange(5.0)).sum())(logits)
    assert grad.shape == logits.shape and bool(jnp.all(jnp.isfinite(grad)))


def test_k_subset_beta_is_pytree_data():
    """``beta`` is a data field (it may be traced: a ``jit`` argument, a ``grad`` variable), while
    ``k`` and the estimator stay static."""
    estimator = numpyro_redge.AIMLE()
    d = numpyro_redge.KSubset(jnp.zeros((2, 6)), 3, estimator, beta=jnp.asarray(0.7))
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert any(leaf is d.beta for leaf in leaves)

    @jax.jit
    def density(d, key):
        def loss(beta):
            moved = jax.tree_util.tree_unflatten(treedef, [beta if leaf is d.beta else leaf for leaf in leaves])
            return (moved.rsample(key) * jnp.arange(6.0)).sum()

        return jax.grad(loss)(d.beta)

    value = density(d, jax.random.PRNGKey(0))
    assert 0 <= float(value) <= 6
    assert jax.tree_util.tree_unflatten(treedef, leaves).k == 3


def test_aimle_state_in_a_hand_written_guide():
    """The loop of the AIMLE docstring: the guide takes β from the state, the density is the
    gradient of the loss with respect to β, and the state is advanced after the step."""
    target = jnp.asarray(cases.SUBSET_OPT_TARGET)
    estimator = numpyro_redge.AIMLE(target_density=4.0, step=0.01)

    def model(beta):
        z = numpyro.sample("z", numpyro_redge.KSubset(jnp.zeros(10), cases.SUBSET_OPT_K))
        numpyro.factor("fit", -4.0 * ((z - target) ** 2).sum())

    def guide(beta):
        logits = numpyro.param("logits", 0.01 * jax.random.normal(jax.random.PRNGKey(3), (10,)))
        numpyro.sample("z", numpyro_redge.KSubset(logits, cases.SUBSET_OPT_K, estimator, beta=beta))

    optimizer = optax.adam(0.05)

    @jax.jit
    def step(params, optimizer_state, state, key):
        def loss(p, beta):
            return Trace_ELBO().loss(key, p, model, guide, beta)

        grads, density = jax.grad(loss, argnums=(0, 1))(params, state.beta)
        updates, optimizer_state = optimizer.update(grads, optimizer_state)
        return optax.apply_updates(params, updates), optimizer_state, estimator.update_state(state, density), density

    params = {"logits": 0.01 * jax.random.normal(jax.random.PRNGKey(3), (10,))}
    optimizer_state, state, betas = optimizer.init(params), estimator.init_state(), []
    for key in jax.random.split(jax.random.PRNGKey(4), 20):
        params, optimizer_state, state, density = step(params, optimizer_state, state, key)
        # One site and one particle: the cotangent of beta is that call's density, in [0, n].
        assert 0 <= float(density) <= 10
        betas.append(float(state.beta))
    # The density of a single-site k-subset gradient stays below 4 here: β rises by the step.
    np.testing.assert_allclose(betas, [1.0 + 0.01 * (t + 1) for t in range(20)], rtol=1e-12)


def test_gumbel_rao_exponentials_are_never_zero():
    """A zero exponential is an infinite conditional Gumbel (NaN gradient): jax.random.exponential
    gives one about every 2^24 float32 draws (found by benchmarks/polynomial_programming.py after
    ~4e7 draws). The noise is -log U with U on [tiny, 1): at U's smallest value it is finite, and
    its law is still the standard exponential (mean 1, variance 1; 10^6 draws, 6-SE bounds: false
    alarm below 1e-8)."""
    from numpyro_redge._math import sample_exponential

    tiny = jnp.finfo(jnp.float32).tiny
    assert bool(jnp.isfinite(-jnp.log(tiny))) and float(-jnp.log(jnp.float32(1 - 2**-24))) > 0
    draws = sample_exponential(jax.random.PRNGKey(0), (10**6,), jnp.float32)
    assert bool((draws > 0).all()) and bool(jnp.isfinite(draws).all())
    assert abs(float(draws.mean()) - 1) < 6e-3 and abs(float(draws.var()) - 1) < 6 * (8**0.5) * 1e-3
    _, exponentials = numpyro_redge.GumbelRao(num_draws=3).sample_noise(jax.random.PRNGKey(1), jnp.zeros((4, 5)))
    assert exponentials.shape == (3, 4, 5) and bool((exponentials > 0).all())


# Gamma(0.01) is below float32's smallest positive number with probability 0.42, which a float32 draw
# can only give as 0 (jax.random.gamma too): tested in float64, where that probability is 8e-4.
@pytest.mark.parametrize(
    "concentration, dtype",
    [(0.01, "float64")] + [(c, d) for c in (1 / 3, 1.0, 2.5) for d in ("float32", "float64")],
)
def test_gamma_sampler_follows_the_gamma_law(concentration, dtype):
    """``sample_gamma`` (the Sum-of-Gamma noise's sampler) against the Gamma CDF, by a one-sample
    Kolmogorov-Smirnov test on 100 000 draws at level 1e-4, compiled and under vmap (false alarm
    1.4e-3 over the 14 tests); and it never reads a value on the host."""
    from scipy import stats

    from numpyro_redge._math import sample_gamma
    from tests import host_sync

    draw = jax.jit(lambda key: sample_gamma(key, concentration, (1_000, 100), dtype))
    key = jax.random.PRNGKey(7)
    with host_sync.no_host_synchronisation("numpyro"):
        values = draw(key)
    assert values.dtype == dtype and bool(jnp.all(values >= 0))
    assert stats.kstest(np.asarray(values, np.float64).ravel(), stats.gamma(concentration).cdf).pvalue > 1e-4
    rows = jax.vmap(lambda key: sample_gamma(key, concentration, (100,), dtype))(
        jax.random.split(jax.random.PRNGKey(8), 1_000)
    )
    assert stats.kstest(np.asarray(rows, np.float64).ravel(), stats.gamma(concentration).cdf).pvalue > 1e-4


def test_an_eager_draw_is_one_compiled_program_per_estimator_k_and_shape():
    """Outside ``jit`` a draw compiles once per estimator (by value: equal estimators share it), ``k``
    and shape, not per call or per key; under ``jit`` it is inlined in the caller's program."""
    from numpyro_redge.estimators.base import _compiled_draw

    logits = jnp.zeros((3, 7))
    numpyro_redge.GumbelRao(temperature=0.7)(jax.random.PRNGKey(0), logits)
    programs = _compiled_draw._cache_size()
    for seed in range(3):
        sample = numpyro_redge.GumbelRao(temperature=0.7)(jax.random.PRNGKey(seed), logits)
        assert sample.shape == (3, 7) and bool(jnp.all(sample.sum(-1) == 1))
    assert _compiled_draw._cache_size() == programs
    numpyro_redge.GumbelRao(temperature=0.7)(jax.random.PRNGKey(0), jnp.zeros((2, 7)))
    numpyro_redge.GumbelRao(temperature=0.8)(jax.random.PRNGKey(0), logits)
    assert _compiled_draw._cache_size() == programs + 2
    # The same noise gives the same draw compiled and step by step.
    estimator, key = numpyro_redge.ReinMax(), jax.random.PRNGKey(4)
    step_by_step = estimator.apply(logits, *estimator.sample_noise(key, logits))
    assert bool(jnp.array_equal(estimator(key, logits), step_by_step))
