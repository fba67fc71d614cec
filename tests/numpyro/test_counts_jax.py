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
