"""Property-based checks over both hosts (hypothesis, derandomized: the same bounded set of examples
on every run), for every estimator and distribution, over random batch shapes (empty batches
included), every float dtype, masked categories (``-inf`` logits) and logits up to ±1e4:

- samples are bitwise one-hot (k-hot, counts), in the parameters' dtype, never a masked category;
- gradients are finite, and exactly zero on the masked categories;
- ``log_prob`` is finite off the mask and equals the exact pmf.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tests import cases

PROPERTY_SETTINGS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]
# Few distinct shapes: JAX compiles each new shape once, and the properties do not depend on size.
BATCH_SHAPES = [(), (0,), (3,), (2, 0), (2, 3)]
CATEGORICAL_ESTIMATORS = list(cases.ESTIMATORS) + list(cases.SUBSET_ESTIMATORS)
LOG_PROB_TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-5, "float64": 1e-12}


def make_estimator(backend, estimator_id):
    table = cases.ESTIMATORS if estimator_id in cases.ESTIMATORS else cases.SUBSET_ESTIMATORS
    name, kwargs = table[estimator_id]
    return getattr(backend.lib, name)(**kwargs)


@st.composite
def masked_logits(draw, categories=(2, 5), min_allowed=1):
    """``(logits, mask, cotangent, dtype)``: logits of a random batch shape, a mask of forbidden
    categories leaving at least ``min_allowed`` allowed per row, and a cotangent."""
    shape = (*draw(st.sampled_from(BATCH_SHAPES)), draw(st.sampled_from(categories)))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    size = int(np.prod(shape))
    logits = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=size, max_size=size))).reshape(shape) * scale
    mask = np.asarray(draw(st.lists(st.booleans(), min_size=size, max_size=size)), bool).reshape(shape)
    mask[..., :min_allowed] = False
    cotangent = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=size, max_size=size))).reshape(shape)
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    return np.where(mask, -np.inf, logits), mask, cotangent, dtype


def sample_and_gradient(backend, estimator, logits, cotangent, dtype, k=1):
    """A sample of ``logits`` and the gradient of ``<sample, cotangent>`` for the same noise,
    compiled as one program in JAX: eager JAX compiles every operation anew for each example's
    shape and dtype (hundreds of small compilations per test), whereas the properties hold on both
    paths and SVI compiles."""

    def compute(x, cotangent, key):
        sample = backend.call(estimator, x, key, k=k)
        grad = backend.gradient(lambda y: (backend.call(estimator, y, key, k=k) * cotangent).sum())(x)
        return sample, grad

    return backend.jit(compute)(backend.array(logits, dtype), backend.array(cotangent, dtype), backend.rng(0).next())


def assert_hard(backend, sample, logits, mask, dtype, k=1):
    assert backend.dtype_name(sample) == dtype
    values = backend.numpy(sample).astype(np.float64)
    assert values.shape == logits.shape
    assert np.all((values == 0) | (values == 1))
    assert np.all(values.sum(-1) == k)
    assert not np.any(values[mask])


@pytest.mark.parametrize("estimator_id", CATEGORICAL_ESTIMATORS)
def test_estimator_samples_are_hard_and_gradients_vanish_on_masked_categories(backend, estimator_id):
    estimator = make_estimator(backend, estimator_id)

    @PROPERTY_SETTINGS
    @given(masked_logits())
    def check(example):
        logits, mask, cotangent, dtype = example
        sample, grad = sample_and_gradient(backend, estimator, logits, cotangent, dtype)
        assert_hard(backend, sample, logits, mask, dtype)
        grad = backend.numpy(grad).astype(np.float64)
        assert np.all(np.isfinite(grad))
        assert np.all(grad[mask] == 0)

    check()


@pytest.mark.parametrize("estimator_id", list(cases.SUBSET_ESTIMATORS))
def test_subset_estimator_samples_are_k_hot_and_gradients_vanish_on_masked_items(backend, estimator_id):
    estimator = make_estimator(backend, estimator_id)

    @PROPERTY_SETTINGS
    @given(masked_logits(categories=(5, 8), min_allowed=3), st.integers(1, 3))
    def check(example, k):
        logits, mask, cotangent, _ = example
        sample, grad = sample_and_gradient(backend, estimator, logits, cotangent, "float64", k=k)
        assert_hard(backend, sample, logits, mask, "float64", k=k)
        grad = backend.numpy(grad)
        assert np.all(np.isfinite(grad))
        assert np.all(grad[mask] == 0)

    check()


def test_one_hot_categorical_log_prob_is_the_exact_pmf_and_finite_off_the_mask(backend):
    @PROPERTY_SETTINGS
    @given(masked_logits())
    def check(example):
        logits, mask, _, dtype = example

        def sample_and_log_prob(x, key):
            distribution = backend.lib.OneHotCategorical(logits=x)
            value = backend.sample(distribution, key)
            return value, distribution.log_prob(value)

        value, log_prob = backend.jit(sample_and_log_prob)(backend.array(logits, dtype), backend.rng(0).next())
        assert_hard(backend, value, logits, mask, dtype)
        log_prob = backend.numpy(log_prob).astype(np.float64)
        assert np.all(np.isfinite(log_prob))
        rounded = backend.numpy(backend.array(logits, dtype)).astype(np.float64)
        exact = rounded - np.logaddexp.reduce(rounded, axis=-1, keepdims=True)
        expected = np.where(backend.numpy(value).astype(bool), exact, 0.0).sum(-1)
        assert np.all(np.abs(log_prob - expected) <= LOG_PROB_TOLERANCE[dtype] * (1 + np.abs(expected)))

    check()


def test_k_subset_log_prob_is_the_exact_pmf_and_finite_off_the_mask(backend):
    @PROPERTY_SETTINGS
    @given(masked_logits(categories=(4, 6), min_allowed=2), st.integers(1, 2))
    def check(example, k):
        logits, mask, _, _ = example

        def sample_and_log_prob(x, key):
            distribution = backend.lib.KSubset(x, k, estimator=backend.lib.MarginalStraightThrough())
            value = backend.sample(distribution, key)
            return value, distribution.log_prob(value)

        value, log_prob = backend.jit(sample_and_log_prob)(backend.array(logits), backend.rng(0).next())
        assert_hard(backend, value, logits, mask, "float64", k=k)
        log_prob = backend.numpy(log_prob)
        assert np.all(np.isfinite(log_prob))
        chosen = backend.numpy(value).astype(bool)
        with np.errstate(invalid="ignore"):
            log_normalizer = cases.reference_log_elementary_symmetric(logits, k)
        score = np.where(chosen, logits, 0.0).sum(-1)
        # log_prob = ⟨z, θ⟩ − log e_k is a difference: near 0 (a nearly sure subset) its absolute error
        # is the rounding of the operands, a few ulps of 1 + |⟨z, θ⟩| + |log e_k| (as for the log of
        # any probability near 1). The recursion and the product tree round differently: at logits
        # (0, 0, 30, 15.94), k = 1, both are within 1 ulp of 30 of the 60-digit value.
        rounding = 4 * np.finfo(np.float64).eps * (1 + np.abs(score) + np.abs(log_normalizer))
        error = np.abs(log_prob - (score - log_normalizer))
        assert np.all(error <= 1e-9 * np.abs(score - log_normalizer) + rounding)

    check()


def test_bernoulli_values_are_zero_or_one_and_log_prob_is_exact(backend):
    @PROPERTY_SETTINGS
    @given(masked_logits(categories=(2,)), st.sampled_from(list(cases.ESTIMATORS)))
    def check(example, estimator_id):
        logits, _, _, dtype = example
        logits = np.where(np.isinf(logits), 0.0, logits)[..., 0]
        estimator = make_estimator(backend, estimator_id)

        def sample_and_log_prob(x, key):
            distribution = backend.lib.Bernoulli(logits=x, estimator=estimator)
            value = backend.rsample(distribution, key)
            return value, distribution.log_prob(value)

        run = backend.jit(sample_and_log_prob)
        value, log_prob = run(backend.array(logits, dtype), backend.rng(0).next())
        assert backend.dtype_name(value) == dtype
        values = backend.numpy(value).astype(np.float64)
        assert values.shape == logits.shape and np.all((values == 0) | (values == 1))
        rounded = backend.numpy(backend.array(logits, dtype)).astype(np.float64)
        expected = -np.logaddexp(0.0, np.where(values == 1, -rounded, rounded))
        log_prob = backend.numpy(log_prob).astype(np.float64)
        assert np.all(np.abs(log_prob - expected) <= LOG_PROB_TOLERANCE[dtype] * (1 + np.abs(expected)))

    check()


def test_poisson_values_are_counts_on_the_support_and_log_prob_is_exact(backend):
    @PROPERTY_SETTINGS
    @given(
        st.sampled_from([(), (0,), (3,)]),
        st.sampled_from([0.5, 3.0, 40.0]),
        st.sampled_from(["float32", "float64"]),
        st.sampled_from(list(cases.ESTIMATORS)),
    )
    def check(batch_shape, rate, dtype, estimator_id):
        rates = np.full(batch_shape, rate)
        distribution = backend.lib.Poisson(
            backend.array(rates, dtype), estimator=make_estimator(backend, estimator_id), truncation=120
        )
        value = backend.rsample(distribution, backend.rng(0).next())
        assert backend.dtype_name(value) == dtype
        values = backend.numpy(value).astype(np.float64)
        assert values.shape == batch_shape and np.all((values == np.round(values)) & (values >= 0) & (values <= 120))
        renormaliser = stats.poisson.logcdf(120, rates)
        expected = stats.poisson.logpmf(values, rates) - renormaliser
        log_prob = backend.numpy(distribution.log_prob(value)).astype(np.float64)
        np.testing.assert_allclose(log_prob, expected, rtol={"float32": 1e-5, "float64": 1e-10}[dtype], atol=1e-6)

    check()
