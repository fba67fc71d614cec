"""JAX-only mechanics of the count distributions: the truncation point is static pytree data, a
static ``truncation=`` is needed under ``jit``, and the search runs on the primal under ``grad``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_redge

pytestmark = pytest.mark.usefixtures("x64", "validation")


def test_jit_needs_a_static_truncation_and_samples_with_one():
    with pytest.raises(ValueError, match="truncation"):
        jax.jit(lambda r: numpyro_redge.Poisson(r).sample(jax.random.PRNGKey(0)))(1.0)
    fixed = numpyro_redge.Poisson(2.0, truncation=4)
    jitted = jax.jit(lambda dist, key: dist.sample(key, (5,)))(fixed, jax.random.PRNGKey(5))
    assert jitted.shape == (5,) and bool(jnp.all(jitted <= 4))
    inside = jax.jit(lambda r, key: numpyro_redge.Poisson(r, truncation=4).sample(key, (5,)))(
        2.0, jax.random.PRNGKey(5)
    )
    np.testing.assert_array_equal(inside, jitted)


def test_a_searched_truncation_point_is_static_pytree_data():
    d = numpyro_redge.NegativeBinomial(jnp.array([3.0, 20.0]), probs=jnp.array([0.6, 0.95]))
    K = d.truncation_point()
    leaves, treedef = jax.tree_util.tree_flatten(d)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is numpyro_redge.NegativeBinomial and rebuilt.truncation_point() == K
    # Passed into jit, the instance keeps K (no truncation= given, no search on traced values).
    mean, support = jax.jit(lambda dist: (dist.mean, dist.enumerate_support(expand=False)))(d)
    np.testing.assert_allclose(mean, d.mean, rtol=1e-12)
    assert support.shape == (K + 1, 1)


def test_the_search_runs_on_the_primal_under_grad():
    """Under ``grad`` (not ``jit``) the parameters are concrete: K is found at construction, and
    the log-pmf on the grid still differentiates."""

    def truncated_mean(rate):
        return numpyro_redge.Poisson(rate).mean

    # d/dλ E[N] = 1 up to the dropped mass (< 1e-6 at the default tail_mass).
    np.testing.assert_allclose(jax.grad(truncated_mean)(3.0), 1.0, atol=1e-4)


def test_count_classes_have_the_hosts_arg_constraints_and_get_args():
    import numpyro.distributions as host

    assert numpyro_redge.Poisson(2.0).get_args() == {"rate": 2.0}
    assert numpyro_redge.Poisson.arg_constraints == host.Poisson.arg_constraints
    d = numpyro_redge.Binomial(jnp.array([3.0, 5.0]), logits=jnp.array([0.1, -0.2]))
    assert set(d.get_args()) == {"total_count", "logits"}
    assert set(numpyro_redge.Geometric(probs=0.3).get_args()) == {"probs"}
    # The parameters stay inside ``base``: the pytree round trip keeps the class and K.
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert jax.tree_util.tree_unflatten(treedef, leaves).truncation_point() == d.truncation_point()


def test_negative_binomial_differentiates_with_a_python_int_total_count():
    grad = jax.grad(lambda p: numpyro_redge.NegativeBinomial(10, p).log_prob(3.0))(0.3)
    expected = jax.grad(lambda p: numpyro_redge.NegativeBinomial(10.0, p).log_prob(3.0))(0.3)
    assert bool(jnp.isfinite(grad)) and grad == expected


def test_reparameterized_discrete_uniform_has_an_int_truncation_and_a_batched_lower_bound():
    import warnings

    import numpyro.distributions as host

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = numpyro_redge.ReparameterizedDiscrete(host.DiscreteUniform(jnp.array([0, 2]), 5))
        assert type(d.truncation_point()) is int and d.truncation_point() == 5
        samples = np.asarray(d.sample(jax.random.PRNGKey(0), (500,)))
    assert samples[:, 1].min() == 2 and samples.max() == 5 and samples[:, 0].min() == 0


def test_vmap_builds_with_a_static_truncation_and_names_it_otherwise():
    rates = jnp.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="truncation=.*jax.vmap|jax.vmap.*truncation="):
        jax.vmap(lambda r: numpyro_redge.Poisson(r).mean)(rates)
    means = jax.vmap(lambda r: numpyro_redge.Poisson(r, truncation=20).mean)(rates)
    np.testing.assert_allclose(means, numpyro_redge.Poisson(rates, truncation=20).mean, rtol=1e-12)
    # vmap over an instance: its batch shape is static pytree data, stale inside; refused by name.
    with pytest.raises(ValueError, match="truncation="):
        jax.vmap(lambda d: d.mean)(numpyro_redge.Poisson(rates))


def test_jit_over_constant_parameters_searches_and_leaves_the_arrays_alone():
    """A jitted function over constant (closed-over) parameters finds K eagerly; a traced one raises
    the documented error, and the caller's float32 array is unchanged for a later eager call."""
    with jax.enable_x64(False):
        rate = jnp.array([1.0, 2.0])
        np.testing.assert_allclose(
            jax.jit(lambda: numpyro_redge.Poisson(rate).mean)(), numpyro_redge.Poisson(rate).mean, rtol=1e-6
        )
        with pytest.raises(ValueError, match="static truncation="):
            jax.jit(lambda r: numpyro_redge.Poisson(r).log_prob(r))(rate)
        assert rate.dtype == jnp.float32
        log_prob = numpyro_redge.Poisson(rate).log_prob(jnp.array([1.0, 1.0]))
        assert log_prob.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(log_prob)))
