import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import pytest
from numpyro import handlers

import numpyro_redge
from numpyro_redge.kl import kl_divergence
from tests import cases

pytestmark = pytest.mark.usefixtures("validation")
ESTIMATOR_IDS = list(cases.ESTIMATORS)


def make_estimator(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(numpyro_redge, name)(**kwargs)


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_one_hot_categorical_samples_are_hard_and_reparameterized(estimator_id, parameter):
    logits = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
    estimator = make_estimator(estimator_id)

    def build(x):
        params = {parameter: jax.nn.softmax(x, -1) if parameter == "probs" else x}
        return numpyro_redge.OneHotCategorical(**params, estimator=estimator)

    d = build(logits)
    assert d.has_rsample and d.batch_shape == (3,) and d.event_shape == (5,)
    value = d.sample(jax.random.PRNGKey(1), (4,))
    assert value.shape == (4, 3, 5)
    assert bool(jnp.all((value == 0) | (value == 1))) and bool(jnp.all(value.sum(-1) == 1))
    weights = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 5))
    grad = jax.grad(lambda x: (build(x).rsample(jax.random.PRNGKey(1), (4,)) * weights).sum())(logits)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0
    d.log_prob(value)  # validation accepts every value we produce


def test_one_hot_categorical_log_prob_is_exact_and_differentiable_in_value():
    logits = jax.random.normal(jax.random.PRNGKey(3), (2, 6))
    d = numpyro_redge.OneHotCategorical(logits=logits)
    support = d.enumerate_support()
    assert support.shape == (6, 2, 6)
    expected = host.Categorical(logits=logits).log_prob(jnp.argmax(support, -1))
    np.testing.assert_allclose(d.log_prob(support), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jnp.exp(d.log_prob(support)).sum(0), jnp.ones(2), rtol=1e-6)
    grad_value = jax.grad(lambda v: d.log_prob(v).sum())(support[2])
    np.testing.assert_allclose(grad_value, jax.nn.log_softmax(logits, -1), rtol=1e-6)
    assert d.enumerate_support(expand=False).shape == (6, 1, 6)


def test_zero_probabilities_are_exact_not_clamped():
    probs = jnp.array([0.5, 0.0, 0.5])
    d = numpyro_redge.OneHotCategorical(probs=probs, estimator=numpyro_redge.StraightThrough())
    assert d.log_prob(jnp.array([0.0, 1.0, 0.0])) == -jnp.inf
    assert float(d.log_prob(jnp.array([1.0, 0.0, 0.0]))) == pytest.approx(np.log(0.5))
    value = d.sample(jax.random.PRNGKey(4), (1000,))
    assert value[:, 1].sum() == 0

    def objective(p):
        dist = numpyro_redge.OneHotCategorical(probs=p, estimator=numpyro_redge.StraightThrough())
        v = dist.rsample(jax.random.PRNGKey(5), (100,))
        return (dist.log_prob(v) + v @ jnp.arange(3.0)).sum()

    assert bool(jnp.all(jnp.isfinite(jax.grad(objective)(probs))))


@pytest.mark.parametrize("cls", [numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli])
def test_expand_keeps_class_and_estimator(cls):
    estimator = numpyro_redge.ReinMax(temperature=2.0)
    shape = (4,) if cls is numpyro_redge.OneHotCategorical else ()
    d = cls(logits=jnp.zeros(shape), estimator=estimator)
    e = d.expand((2, 3))
    assert type(e) is cls and e.estimator is estimator and e.batch_shape == (2, 3)
    assert e.sample(jax.random.PRNGKey(0)).shape == (2, 3) + shape


@pytest.mark.parametrize("cls", [numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli])
def test_distributions_are_pytrees(cls):
    shape = (3, 4) if cls is numpyro_redge.OneHotCategorical else (3,)
    d = cls(logits=jnp.zeros(shape), estimator=numpyro_redge.ReDGE(num_steps=3))
    sample = jax.jit(lambda dist, key: dist.sample(key))(d, jax.random.PRNGKey(0))
    assert sample.shape == shape
    leaves, treedef = jax.tree_util.tree_flatten(d)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.estimator == d.estimator and rebuilt.batch_shape == d.batch_shape
    mapped = jax.lax.map(lambda x: cls(logits=x, estimator=d.estimator).log_prob(cls(logits=x).sample(jax.random.PRNGKey(1))), jnp.zeros((2,) + shape))
    assert mapped.shape[0] == 2


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_bernoulli_samples_are_hard_with_exact_log_prob(estimator_id, parameter):
    probs = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0])
    # NumPyro's `real` constraint rejects infinite logits: ±40 stand for 0 and 1 (mass 4e-18).
    logits = jnp.array([-40.0, jax.scipy.special.logit(0.1), 0.0, jax.scipy.special.logit(0.9), 40.0])
    params = {"probs": probs} if parameter == "probs" else {"logits": logits}
    d = numpyro_redge.Bernoulli(**params, estimator=make_estimator(estimator_id))
    value = d.sample(jax.random.PRNGKey(6), (4000,))
    assert value.shape == (4000, 5) and bool(jnp.all((value == 0) | (value == 1)))
    assert bool(jnp.all(value[:, 0] == 0)) and bool(jnp.all(value[:, 4] == 1))
    support = d.enumerate_support()
    ours = d.log_prob(support)
    if parameter == "probs":
        expected = host.Bernoulli(probs=jnp.clip(probs, 1e-12, 1 - 1e-12)).log_prob(support)
        assert ours[0, 4] == -jnp.inf and ours[1, 0] == -jnp.inf
    else:
        expected = host.Bernoulli(logits=logits).log_prob(support)
    finite = jnp.isfinite(ours)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("x64")
def test_bernoulli_law_and_gradient():
    logits = jnp.array([-1.0, 0.3], jnp.float64)
    draws = 100_000
    estimator = numpyro_redge.StraightThrough()

    def mean_value(x):
        return numpyro_redge.Bernoulli(logits=x, estimator=estimator).rsample(jax.random.PRNGKey(7), (draws,)).mean(0)

    probs = jax.nn.sigmoid(logits)
    # 4.4 standard errors: false alarm 1e-5 per coordinate.
    assert bool(jnp.all(jnp.abs(mean_value(logits) - probs) < 4.4 * jnp.sqrt(probs * (1 - probs) / draws)))
    # Straight-through is exact for the mean: d/dlogit E[z] = p (1 - p).
    np.testing.assert_allclose(jax.jacobian(mean_value)(logits).diagonal(), probs * (1 - probs), rtol=1e-10)
    d = numpyro_redge.Bernoulli(logits=logits)
    grad_value = jax.grad(lambda v: d.log_prob(v).sum())(jnp.zeros(2, jnp.float64))
    np.testing.assert_allclose(grad_value, logits, rtol=1e-12)


def _kl_by_enumeration(p, q_log_prob):
    support = p.enumerate_support()
    log_p = p.log_prob(support)
    return (jnp.exp(log_p) * (log_p - q_log_prob(support))).sum(0)


@pytest.mark.usefixtures("x64")
def test_kl_divergences_are_exact():
    logits_p, logits_q = jax.random.normal(jax.random.PRNGKey(8), (2, 3, 5), jnp.float64)
    p = numpyro_redge.OneHotCategorical(logits=logits_p)
    q = numpyro_redge.OneHotCategorical(logits=logits_q)
    np.testing.assert_allclose(kl_divergence(p, q), _kl_by_enumeration(p, q.log_prob), rtol=1e-10)
    for categorical in [host.Categorical(logits=logits_q), host.Categorical(probs=jax.nn.softmax(logits_q))]:
        np.testing.assert_allclose(
            kl_divergence(p, categorical),
            _kl_by_enumeration(p, lambda v: categorical.log_prob(jnp.argmax(v, -1))),
            rtol=1e-10,
        )
        np.testing.assert_allclose(kl_divergence(categorical, p), kl_divergence(q, p), rtol=1e-10)
    b_p = numpyro_redge.Bernoulli(logits=logits_p[0])
    for b_q in [numpyro_redge.Bernoulli(probs=jax.nn.sigmoid(logits_q[0])), host.Bernoulli(logits=logits_q[0]), host.Bernoulli(probs=jax.nn.sigmoid(logits_q[0]))]:
        np.testing.assert_allclose(kl_divergence(b_p, b_q), _kl_by_enumeration(b_p, b_q.log_prob), rtol=1e-10)
        np.testing.assert_allclose(kl_divergence(b_q, b_p), _kl_by_enumeration(numpyro_redge.Bernoulli(logits=logits_q[0]), b_p.log_prob), rtol=1e-10)


def test_kl_with_zero_probabilities():
    p = numpyro_redge.OneHotCategorical(probs=jnp.array([0.5, 0.5, 0.0]))
    q = numpyro_redge.OneHotCategorical(probs=jnp.array([0.25, 0.0, 0.75]))
    assert float(kl_divergence(p, q)) == np.inf
    assert float(kl_divergence(p, p)) == 0.0
    r = numpyro_redge.OneHotCategorical(probs=jnp.array([0.25, 0.25, 0.5]))
    assert float(kl_divergence(p, r)) == pytest.approx(np.log(2.0), rel=1e-6)


@pytest.mark.parametrize("cls", [numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli])
def test_bad_input_names_the_argument(cls):
    shape = (3,) if cls is numpyro_redge.OneHotCategorical else ()
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls(probs=jnp.full(shape, 0.3), logits=jnp.zeros(shape))
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls()
    with pytest.raises(ValueError, match="logits"):
        cls(logits=jnp.full(shape, jnp.nan))
    with pytest.raises(ValueError, match="estimator"):
        cls(logits=jnp.zeros(shape), estimator="redge")
    with pytest.raises(ValueError, match="probs"):
        cls(probs=jnp.full(shape, 1.5))


def test_bad_values_in_log_prob():
    d = numpyro_redge.OneHotCategorical(logits=jnp.zeros(3))
    for bad in ([0.5, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="value"):
            d.log_prob(jnp.array(bad))
    with pytest.raises(ValueError, match="probs"):
        numpyro_redge.OneHotCategorical(probs=jnp.array([0.5, 0.6, 0.1]))
    with pytest.raises(ValueError, match="value"):
        numpyro_redge.Bernoulli(logits=jnp.zeros(2)).log_prob(jnp.array([0.5, 1.0]))


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
    grad = jax.grad(lambda x: numpyro_redge.RelaxedOneHotCategorical(0.7, logits=x).rsample(jax.random.PRNGKey(9), (10,))[:, 0].sum())(logits)
    assert bool(jnp.all(jnp.isfinite(grad)))
    with pytest.raises(ValueError, match="temperature"):
        numpyro_redge.RelaxedOneHotCategorical(0.0, logits=logits)


def test_handlers_seed_trace_substitute_and_predictive():
    def model():
        return numpyro.sample("z", numpyro_redge.OneHotCategorical(logits=jnp.zeros(4), estimator=numpyro_redge.ReinMax()))

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
    assert float(distribution.log_prob(jnp.array([0, 1, 0]))) == pytest.approx(-np.log(3)), "integer one-hot values are fine"
