"""NumPyro-only mechanics of OneHotCategorical and Bernoulli (the shared behaviour is in
tests/test_distributions.py): pytrees under jit and lax.map, NumPyro's handlers and Predictive,
its integer enumeration, and RelaxedOneHotCategorical, which has no Pyro twin (Pyro has its own)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro import handlers

import numpyro_redge

pytestmark = pytest.mark.usefixtures("validation")


@pytest.mark.parametrize("cls", [numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli])
def test_distributions_are_pytrees(cls):
    shape = (3, 4) if cls is numpyro_redge.OneHotCategorical else (3,)
    d = cls(logits=jnp.zeros(shape), estimator=numpyro_redge.ReDGE(num_steps=3))
    sample = jax.jit(lambda dist, key: dist.sample(key))(d, jax.random.PRNGKey(0))
    assert sample.shape == shape
    leaves, treedef = jax.tree_util.tree_flatten(d)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.estimator == d.estimator and rebuilt.batch_shape == d.batch_shape
    mapped = jax.lax.map(
        lambda x: cls(logits=x, estimator=d.estimator).log_prob(cls(logits=x).sample(jax.random.PRNGKey(1))),
        jnp.zeros((2,) + shape),
    )
    assert mapped.shape[0] == 2


def test_relaxed_one_hot_categorical_density_and_samples():
    """The Concrete density integrates the law of softmax((log π + G)/τ): for K = 2 the first
    coordinate y has the closed-form density of a logistic pushed through a sigmoid."""
    temperature, logits = 0.7, jnp.array([0.3, -0.4])
    d = numpyro_redge.RelaxedOneHotCategorical(temperature, logits=logits)
    grid = jnp.linspace(0.01, 0.99, 99)
    values = jnp.stack([grid, 1 - grid], -1)
    # y = sigmoid((Δ + L)/τ), L ~ Logistic(0, 1), Δ = logit difference; change of variables:
    delta = logits[0] - logits[1]
    s = temperature * jnp.log(grid / (1 - grid)) - delta
    logistic = -s - 2 * jax.nn.softplus(-s)
    closed_form = logistic + jnp.log(temperature) - jnp.log(grid) - jnp.log1p(-grid)
    # The density on the simplex is with respect to the first K − 1 coordinates.
    np.testing.assert_allclose(d.log_prob(values), closed_form, rtol=1e-4, atol=1e-4)
    samples = d.sample(jax.random.PRNGKey(9), (20_000,))
    np.testing.assert_allclose(samples.sum(-1), 1.0, rtol=1e-5)
    grad = jax.grad(
        lambda x: (
            numpyro_redge.RelaxedOneHotCategorical(0.7, logits=x).rsample(jax.random.PRNGKey(9), (10,))[:, 0].sum()
        )
    )(logits)
    assert bool(jnp.all(jnp.isfinite(grad)))
    with pytest.raises(ValueError, match="temperature"):
        numpyro_redge.RelaxedOneHotCategorical(0.0, logits=logits)


def test_handlers_seed_trace_substitute_and_predictive():
    def model():
        return numpyro.sample(
            "z", numpyro_redge.OneHotCategorical(logits=jnp.zeros(4), estimator=numpyro_redge.ReinMax())
        )

    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert tr["z"]["value"].shape == (4,) and float(tr["z"]["value"].sum()) == 1.0
    fixed = jnp.array([0.0, 0.0, 1.0, 0.0])
    assert bool(jnp.all(handlers.substitute(handlers.seed(model, 0), data={"z": fixed})() == fixed))
    draws = numpyro.infer.Predictive(model, num_samples=7)(jax.random.PRNGKey(1))["z"]
    assert draws.shape == (7, 4) and bool(jnp.all(draws.sum(-1) == 1))


def test_one_hot_categorical_refuses_numpyros_integer_enumeration():
    import optax
    from numpyro.infer import SVI, TraceEnum_ELBO  # with funsor, a test dependency

    def model():  # inside a plate NumPyro's own shape check fails first, with its own message
        numpyro.sample("z", numpyro_redge.OneHotCategorical(logits=jnp.zeros(4)), infer={"enumerate": "parallel"})

    svi = SVI(model, lambda: None, optax.adam(0.1), TraceEnum_ELBO())
    with pytest.raises(ValueError, match="enumerate a Categorical site instead"):
        svi.evaluate(svi.init(jax.random.PRNGKey(0)))
    distribution = numpyro_redge.OneHotCategorical(logits=jnp.zeros(3))
    assert float(distribution.log_prob(jnp.array([0, 1, 0]))) == pytest.approx(-np.log(3)), (
        "integer one-hot values are fine"
    )


@pytest.mark.parametrize("cls", [numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli])
def test_pytree_structure_is_stable_after_reading_the_derived_parameter(cls):
    """Issue 13 class 11: reading ``.probs`` cached it in ``__dict__`` (NumPyro's lazy_property),
    which changed the pytree structure, and ``lax.scan`` over distributions failed."""
    shape = (3, 4) if cls is numpyro_redge.OneHotCategorical else (3,)
    d = cls(logits=jnp.zeros(shape))
    before = jax.tree_util.tree_structure(d)
    assert d.probs is not None and d.logits is not None  # reading them cached them before
    assert jax.tree_util.tree_structure(d) == before
    value = d.enumerate_support(expand=False)[1].reshape(d.event_shape)
    _, log_probs = jax.lax.scan(lambda carry, member: (carry, member.log_prob(value)), 0.0, d)
    np.testing.assert_allclose(log_probs, d.log_prob(value))


def test_out_of_support_value_under_jit_scores_minus_infinity():
    """Issue 13 class 11: a value that is not one-hot, traced under jit (no eager error possible),
    got a finite log_prob; as NumPyro's own validate_sample does, it now scores -inf."""
    d = numpyro_redge.OneHotCategorical(logits=jnp.zeros(3), validate_args=True)
    log_prob = jax.jit(d.log_prob)(jnp.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]))
    assert log_prob[0] == -jnp.inf and log_prob[1] == pytest.approx(-np.log(3))
    b = numpyro_redge.Bernoulli(logits=jnp.zeros(2), validate_args=True)
    assert bool(jnp.all(jax.jit(b.log_prob)(jnp.array([0.5, 2.0])) == -jnp.inf))


def test_relaxed_one_hot_categorical_scores_its_own_underflowing_samples():
    """Issue 13 class 8: at temperature 0.1 a coordinate of a draw underflows to 0 and log(0) made
    the density NaN; the draw's log-values (its intermediates, recorded by NumPyro's handlers) keep
    it finite."""
    d = numpyro_redge.RelaxedOneHotCategorical(0.1, logits=jnp.array([0.0, 8.0]))
    value, intermediates = d.sample_with_intermediates(jax.random.PRNGKey(0), (500,))
    assert bool(jnp.all(value == d.sample(jax.random.PRNGKey(0), (500,)))), "draws unchanged"
    assert bool(jnp.any(value == 0)), "the case is exercised"
    assert bool(jnp.all(jnp.isfinite(d.log_prob(value, intermediates))))

    def model():
        numpyro.sample("y", d.expand([500]).to_event(1))

    trace = handlers.trace(handlers.seed(model, 1)).get_trace()
    assert bool(jnp.any(trace["y"]["value"] == 0))
    assert bool(jnp.isfinite(numpyro.infer.util.log_density(handlers.seed(model, 1), (), {}, {})[0]))


def test_relaxed_one_hot_categorical_takes_a_traced_temperature():
    """Issue 13 class 11: the temperature was static (pytree aux data, ``float()``), so it could
    not be traced; a traced non-positive one cannot be refused and gives NaN, not a plausible point."""
    key, logits = jax.random.PRNGKey(0), jnp.array([0.3, -0.4, 0.1])

    def draw(temperature):
        return numpyro_redge.RelaxedOneHotCategorical(temperature, logits=logits).rsample(key)

    np.testing.assert_allclose(jax.jit(draw)(0.7), draw(0.7), rtol=1e-6)  # XLA fuses differently under jit
    assert bool(jnp.all(jnp.isnan(jax.jit(draw)(-0.7))))
    value = jnp.array([0.2, 0.3, 0.5])
    grad = jax.jit(jax.grad(lambda t: numpyro_redge.RelaxedOneHotCategorical(t, logits=logits).log_prob(value)))(0.7)
    assert bool(jnp.isfinite(grad))
    with pytest.raises(ValueError, match="temperature"):
        numpyro_redge.RelaxedOneHotCategorical(jnp.array(-1.0), logits=logits)
