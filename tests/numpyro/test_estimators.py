import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import numpyro_redge
from numpyro_redge._math import softmax_vjp
from tests import cases


def make(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(numpyro_redge, name)(**kwargs)


def counts_of(samples):
    samples = np.asarray(samples, np.float64)
    return samples.reshape(-1, samples.shape[-1]).sum(0)


def law_probs():
    probs = np.exp(cases.LAW_LOGITS)
    return probs / probs.sum()


def vjp_of_sample(estimator, logits, cotangent, *noise):
    """The surrogate gradient of ``⟨sample, cotangent⟩`` with respect to ``logits``, jitted."""
    function = lambda x: (estimator.apply(x, *noise) * cotangent).sum()  # noqa: E731
    return jax.jit(jax.grad(function))(logits)


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_estimators_are_immutable_hashable_and_static(estimator_id):
    estimator = make(estimator_id)
    assert estimator == make(estimator_id) and hash(estimator) == hash(make(estimator_id))
    if dataclasses.fields(estimator):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(estimator, dataclasses.fields(estimator)[0].name, 1)
    sample = jax.jit(lambda est, key, x: est(key, x), static_argnums=0)(
        estimator, jax.random.PRNGKey(0), jnp.zeros((2, 3))
    )
    assert sample.shape == (2, 3)


@pytest.mark.parametrize("name, kwargs, argument", cases.BAD_ESTIMATOR_ARGUMENTS)
def test_bad_hyperparameters_name_the_argument(name, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        getattr(numpyro_redge, name)(**kwargs)


def test_integer_logits_are_rejected():
    with pytest.raises(ValueError, match="logits"):
        numpyro_redge.StraightThrough()(jax.random.PRNGKey(0), jnp.zeros((3, 4), dtype=jnp.int32))


@pytest.mark.parametrize("estimator_id", cases.EXACT_LAW)
def test_exact_estimators_sample_the_categorical_law(estimator_id):
    logits = jnp.broadcast_to(jnp.asarray(cases.LAW_LOGITS, jnp.float32), (cases.LAW_DRAWS, 10))
    samples = jax.jit(make(estimator_id).__call__)(jax.random.PRNGKey(0), logits)
    counts = counts_of(samples)
    assert stats.chisquare(counts, law_probs() * counts.sum()).pvalue > cases.FALSE_ALARM


@pytest.mark.parametrize("setting", list(cases.REDGE_SETTINGS))
def test_redge_law_matches_the_reference_and_its_bias_is_recorded(setting, report):
    torch = pytest.importorskip("torch")
    redge = pytest.importorskip("redge")
    kwargs, reference = cases.REDGE_SETTINGS[setting]
    logits = jnp.broadcast_to(jnp.asarray(cases.LAW_LOGITS, jnp.float32), (cases.LAW_DRAWS, 10))
    ours = counts_of(jax.jit(numpyro_redge.ReDGE(**kwargs).__call__)(jax.random.PRNGKey(2), logits))
    torch.manual_seed(2)
    torch_logits = torch.tensor(np.asarray(logits)).requires_grad_()
    if reference == "reindge":
        theirs = redge.SAMPLERS["reindge"](torch_logits, n_steps=kwargs["num_steps"], t_1=kwargs["t1"])
    else:
        theirs = getattr(redge, reference)(torch_logits, kwargs["num_steps"], kwargs["t1"])
    theirs = counts_of(theirs.detach().numpy())
    # Two-sample chi-square (homogeneity) test: the two laws are the same.
    assert stats.chi2_contingency(np.stack([ours, theirs])).pvalue > cases.FALSE_ALARM
    bias = cases.total_variation(ours / ours.sum(), law_probs())
    report(f"jax   ReDGE {kwargs}: TV(hard-sample law, Cat(softmax θ)) = {bias:.4f}")


@pytest.mark.usefixtures("x64")
def test_straight_through_gradient_is_the_softmax_jacobian():
    key_logits, key_cotangent, key = jax.random.split(jax.random.PRNGKey(3), 3)
    logits = jax.random.normal(key_logits, (5, 4, 7), jnp.float64)
    cotangent = jax.random.normal(key_cotangent, (5, 4, 7), jnp.float64)
    estimator = numpyro_redge.StraightThrough()
    ours = vjp_of_sample(estimator, logits, cotangent, *estimator.sample_noise(key, logits))
    _, vjp = jax.vjp(lambda x: jax.nn.softmax(x, -1), logits)
    np.testing.assert_allclose(ours, vjp(cotangent)[0], rtol=0, atol=1e-15)


@pytest.mark.usefixtures("x64")
def test_gumbel_softmax_gradient_is_that_of_the_relaxed_sample():
    key_logits, key_cotangent, key = jax.random.split(jax.random.PRNGKey(4), 3)
    logits = jax.random.normal(key_logits, (5, 7), jnp.float64)
    cotangent = jax.random.normal(key_cotangent, (5, 7), jnp.float64)
    estimator = numpyro_redge.GumbelSoftmax(temperature=0.7)
    (gumbel,) = estimator.sample_noise(key, logits)
    sample = estimator.apply(logits, gumbel)
    assert np.array_equal(np.argmax(sample, -1), np.argmax(logits + gumbel, -1))
    ours = vjp_of_sample(estimator, logits, cotangent, gumbel)
    _, vjp = jax.vjp(lambda x: jax.nn.softmax((x + gumbel) / 0.7, -1), logits)
    np.testing.assert_allclose(ours, vjp(cotangent)[0], rtol=1e-12, atol=1e-14)


def reinmax_closed_form(logits, sample, cotangent, temperature):
    """ReinMax's surrogate for a given hard sample, written from the paper's formula."""
    probs = jax.nn.softmax(logits, -1)
    midpoint = 0.5 * (jax.nn.softmax(logits / temperature, -1) + sample)
    return softmax_vjp(midpoint, 2 * cotangent) - softmax_vjp(probs, 0.5 * cotangent)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reinmax_matches_its_closed_form_and_enumeration(temperature):
    K, draws = 5, 100_000
    key_logits, key_cotangent, key = jax.random.split(jax.random.PRNGKey(6), 3)
    logits = jax.random.normal(key_logits, (K,), jnp.float64)
    cotangent = jax.random.normal(key_cotangent, (K,), jnp.float64)
    probs = jax.nn.softmax(logits)
    per_category = jnp.stack([reinmax_closed_form(logits, jnp.eye(K)[k], cotangent, temperature) for k in range(K)])
    exact_mean = probs @ per_category
    if temperature == 1.0:
        # At τ = 1, E_D[2 J(π½) − ½ J(π)] = J(π): unbiased for linear functions.
        np.testing.assert_allclose(exact_mean, softmax_vjp(probs, cotangent), rtol=1e-12, atol=1e-14)
    estimator = numpyro_redge.ReinMax(temperature)
    batch = jnp.broadcast_to(logits, (draws, K))
    noise = estimator.sample_noise(key, batch)
    sample = estimator.apply(batch, *noise)
    per_draw = vjp_of_sample(estimator, batch, cotangent, *noise)
    closed = jax.vmap(reinmax_closed_form, (0, 0, None, None))(batch, sample, cotangent, temperature)
    np.testing.assert_allclose(per_draw, closed, rtol=1e-10, atol=1e-13)
    mean, std = per_draw.mean(0), per_draw.std(0)
    # |z| < 4.4 per coordinate: two-sided false alarm 1e-5 each, 5e-5 over the K coordinates.
    z = (mean - exact_mean) / (std / draws**0.5 + 1e-300)
    assert np.abs(z).max() < 4.4


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_values_are_bitwise_one_hot_in_every_dtype(estimator_id, dtype):
    logits = (3 * jax.random.normal(jax.random.PRNGKey(7), (500, 9))).astype(dtype)
    estimator = make(estimator_id)
    noise = estimator.sample_noise(jax.random.PRNGKey(8), logits)
    sample = estimator.apply(logits, *noise)
    assert sample.dtype == dtype and sample.shape == logits.shape
    assert bool(jnp.all((sample == 0) | (sample == 1))) and bool(jnp.all(sample.sum(-1) == 1))
    grad = vjp_of_sample(estimator, logits, jnp.ones_like(logits), *noise)
    assert grad.dtype == dtype and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_values_are_bitwise_one_hot_in_float64(estimator_id):
    logits = 3 * jax.random.normal(jax.random.PRNGKey(7), (500, 9), jnp.float64)
    sample = make(estimator_id)(jax.random.PRNGKey(8), logits)
    assert sample.dtype == jnp.float64
    assert bool(jnp.all((sample == 0) | (sample == 1))) and bool(jnp.all(sample.sum(-1) == 1))


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_extreme_and_masked_logits(estimator_id):
    logits = jnp.broadcast_to(jnp.array([1e4, -1e4, 0.0, -jnp.inf, 3.0, -jnp.inf]), (4000, 6))
    estimator = make(estimator_id)
    noise = estimator.sample_noise(jax.random.PRNGKey(9), logits)
    sample = estimator.apply(logits, *noise)
    assert bool(jnp.all((sample == 0) | (sample == 1))) and bool(jnp.all(sample.sum(-1) == 1))
    assert sample[:, jnp.array([3, 5])].sum() == 0, "a masked category was sampled"
    if estimator_id in cases.EXACT_LAW:
        assert bool(jnp.all(sample[:, 0] == 1))
    cotangent = jax.random.normal(jax.random.PRNGKey(10), logits.shape)
    assert bool(jnp.all(jnp.isfinite(vjp_of_sample(estimator, logits, cotangent, *noise))))


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_vmap_and_batched_logits(estimator_id):
    estimator = make(estimator_id)
    logits = jax.random.normal(jax.random.PRNGKey(11), (3, 4, 5))
    keys = jax.random.split(jax.random.PRNGKey(12), 3)
    sample = jax.vmap(estimator)(keys, logits)
    assert sample.shape == (3, 4, 5) and bool(jnp.all(sample.sum(-1) == 1))
    grad = jax.grad(lambda x: (jax.vmap(estimator)(keys, x) * jnp.arange(5.0)).sum())(logits)
    assert grad.shape == logits.shape and bool(jnp.all(jnp.isfinite(grad)))


# Each example compiles new shapes under jit: 6 examples keep the run short.
@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    batch_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    num_categories=st.integers(1, 12),
    estimator_id=st.sampled_from(list(cases.ESTIMATORS)),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_one_hot_for_any_shape(batch_shape, num_categories, estimator_id, scale, seed):
    key_logits, key = jax.random.split(jax.random.PRNGKey(seed))
    logits = scale * jax.random.normal(key_logits, tuple(batch_shape) + (num_categories,))
    sample = make(estimator_id)(key, logits)
    assert sample.shape == logits.shape
    assert bool(jnp.all((sample == 0) | (sample == 1))) and bool(jnp.all(sample.sum(-1) == 1))


# ST and ReinMax (τ = 1) are unbiased for functions linear in the one-hot sample; ReinMax, a
# trapezoidal (Heun) rule, is also exact for quadratic ones.
UNBIASED = {("linear", "straight_through"), ("linear", "reinmax"), ("quadratic", "reinmax")}


def test_gradient_quality_against_enumeration(report):
    """Mean surrogate gradient of each estimator vs the exact gradient of E[f(D)], by enumeration;
    ST and ReinMax (τ = 1) must be unbiased on a linear f."""
    K, draws = 6, 50_000
    key_logits, key_weights, key = jax.random.split(jax.random.PRNGKey(13), 3)
    logits = jax.random.normal(key_logits, (K,))
    weights = jax.random.normal(key_weights, (K,))
    functions = {"linear": lambda d: d @ weights, "quadratic": lambda d: (d @ weights - 0.5) ** 2}
    for fname, f in functions.items():
        exact = jax.grad(lambda x: jax.nn.softmax(x) @ f(jnp.eye(K)))(logits)
        for estimator_id in cases.ESTIMATORS:
            estimator = make(estimator_id)
            batch = jnp.broadcast_to(logits, (draws, K))
            noise = estimator.sample_noise(key, batch)
            per_draw = jax.jit(jax.grad(lambda x: f(estimator.apply(x, *noise)).sum()))(batch)
            mean = per_draw.mean(0)
            bias = float(jnp.linalg.norm(mean - exact))
            variance = float(per_draw.var(0).sum())
            cosine = float(mean @ exact / (jnp.linalg.norm(mean) * jnp.linalg.norm(exact)))
            report(
                f"jax   {estimator_id:16s} {fname:9s}: |bias| {bias:.4f} (|∇| {float(jnp.linalg.norm(exact)):.4f}), "
                f"cosine {cosine:.4f}, total variance {variance:.4f}"
            )
            if (fname, estimator_id) in UNBIASED:
                # 5 standard errors (false alarm < 1e-4) plus float32 rounding of the mean.
                assert bias < 5 * (variance / draws) ** 0.5 + 1e-5
