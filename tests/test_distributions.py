"""OneHotCategorical and Bernoulli in both hosts: hard reparameterized samples, exact log_prob,
exact KL divergences, the registry protocol, and bad input."""

import numpy as np
import pytest
from scipy.special import expit, log_softmax

from tests import cases

ESTIMATOR_IDS = list(cases.ESTIMATORS)


def make_estimator(backend, estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(backend.lib, name)(**kwargs)


def kl_by_enumeration(backend, p, q_log_prob):
    support = p.enumerate_support()
    log_p, log_q = backend.numpy(p.log_prob(support)), backend.numpy(q_log_prob(support))
    return (np.exp(log_p) * (log_p - log_q)).sum(0)


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_one_hot_categorical_samples_are_hard_and_reparameterized(backend, estimator_id, parameter):
    logits = np.random.default_rng(0).normal(size=(3, 5))
    weights = backend.array(np.random.default_rng(1).normal(size=(4, 3, 5)))
    estimator = make_estimator(backend, estimator_id)
    rng = backend.rng(0)

    def build(x):
        params = {parameter: backend.softmax(x) if parameter == "probs" else x}
        return backend.lib.OneHotCategorical(**params, estimator=estimator)

    d = build(backend.array(logits))
    assert d.has_rsample and d.batch_shape == (3,) and d.event_shape == (5,)
    value = backend.numpy(backend.rsample(d, rng.next(), (4,)))
    assert value.shape == (4, 3, 5)
    assert np.all((value == 0) | (value == 1)) and np.all(value.sum(-1) == 1)
    key = rng.next()
    (grad,) = backend.grad(lambda x: (backend.rsample(build(x), key, (4,)) * weights).sum(), logits)
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    hard = backend.numpy(backend.sample(d, rng.next(), (2,)))
    assert np.all(hard.sum(-1) == 1)
    d.log_prob(backend.array(value))  # validation accepts every value we produce


def test_one_hot_categorical_log_prob_is_exact_and_differentiable_in_value(backend):
    logits_array = np.random.default_rng(1).normal(size=(2, 6))
    logits = backend.array(logits_array)
    d = backend.lib.OneHotCategorical(logits=logits)
    support = d.enumerate_support()
    assert tuple(support.shape) == (6, 2, 6)
    assert tuple(d.enumerate_support(expand=False).shape) == (6, 1, 6)
    indices = backend.array(np.argmax(backend.numpy(support), -1), "int64")
    expected = backend.dist.Categorical(logits=logits).log_prob(indices)
    np.testing.assert_allclose(backend.numpy(d.log_prob(support)), backend.numpy(expected), rtol=1e-12)
    np.testing.assert_allclose(np.exp(backend.numpy(d.log_prob(support))).sum(0), np.ones(2), rtol=1e-12)
    (grad_value,) = backend.grad(lambda v: d.log_prob(v).sum(), backend.numpy(support[2]))
    np.testing.assert_allclose(grad_value, log_softmax(logits_array, -1), rtol=1e-12)


def test_zero_probabilities_are_exact_not_clamped(backend):
    probs = np.array([0.5, 0.0, 0.5])
    estimator = backend.lib.StraightThrough()
    d = backend.lib.OneHotCategorical(probs=backend.array(probs), estimator=estimator)
    assert float(d.log_prob(backend.array([0.0, 1.0, 0.0]))) == -np.inf
    assert float(d.log_prob(backend.array([1.0, 0.0, 0.0]))) == pytest.approx(np.log(0.5))
    rng = backend.rng(4)
    value = backend.numpy(backend.sample(d, rng.next(), (1000,)))
    assert value[:, 1].sum() == 0
    key = rng.next()

    def objective(p):
        dist = backend.lib.OneHotCategorical(probs=p, estimator=estimator)
        v = backend.rsample(dist, key, (100,))
        return (dist.log_prob(v) + (v * backend.array([0.0, 1.0, 2.0])).sum(-1)).sum()

    (grad,) = backend.grad(objective, probs)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", ["OneHotCategorical", "Bernoulli"])
def test_expand_keeps_class_and_estimator(backend, name):
    cls = getattr(backend.lib, name)
    estimator = backend.lib.ReinMax(temperature=2.0)
    shape = (4,) if name == "OneHotCategorical" else ()
    d = cls(logits=backend.array(np.zeros(shape)), estimator=estimator)
    e = d.expand((2, 3))
    assert type(e) is cls and e.estimator is estimator and e.batch_shape == (2, 3)
    assert tuple(backend.rsample(e, backend.rng(0).next()).shape) == (2, 3) + shape


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_bernoulli_samples_are_hard_with_exact_log_prob(backend, estimator_id, parameter):
    probs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    # NumPyro's `real` constraint rejects infinite logits: ±40 stand for 0 and 1 (mass 4e-18);
    # Pyro's infinite logits are tested in tests/pyro/test_distributions_pyro.py.
    logits = np.array([-40.0, np.log(0.1 / 0.9), 0.0, np.log(0.9 / 0.1), 40.0])
    params = {"probs": backend.array(probs)} if parameter == "probs" else {"logits": backend.array(logits)}
    d = backend.lib.Bernoulli(**params, estimator=make_estimator(backend, estimator_id))
    value = backend.numpy(backend.rsample(d, backend.rng(2).next(), (4000,)))
    assert value.shape == (4000, 5) and np.all((value == 0) | (value == 1))
    assert np.all(value[:, 0] == 0) and np.all(value[:, 4] == 1)
    support = d.enumerate_support()
    ours = backend.numpy(d.log_prob(support))
    if parameter == "probs":
        expected = backend.dist.Bernoulli(probs=backend.array(np.clip(probs, 1e-12, 1 - 1e-12))).log_prob(support)
        assert ours[0, 4] == -np.inf and ours[1, 0] == -np.inf
    else:
        expected = backend.dist.Bernoulli(logits=backend.array(logits)).log_prob(support)
    finite = np.isfinite(ours)
    np.testing.assert_allclose(ours[finite], backend.numpy(expected)[finite], rtol=1e-5, atol=1e-6)


def test_bernoulli_law_and_gradient(backend):
    logits = np.array([-1.0, 0.3])
    draws = 100_000
    estimator = backend.lib.StraightThrough()
    rng = backend.rng(3)

    def mean_value(x, key):
        return backend.rsample(backend.lib.Bernoulli(logits=x, estimator=estimator), key, (draws,)).mean(0)

    probs = expit(logits)
    # 4.4 standard errors: false alarm 1e-5 per coordinate.
    mean = backend.numpy(mean_value(backend.array(logits), rng.next()))
    assert np.all(np.abs(mean - probs) < 4.4 * np.sqrt(probs * (1 - probs) / draws))
    # Straight-through is exact for the mean: d/dlogit E[z] = p (1 - p), and each coordinate's
    # surrogate depends on its own logit only, so the gradient of the sum is the Jacobian's diagonal.
    key = rng.next()
    (grad,) = backend.grad(lambda x: mean_value(x, key).sum(), logits)
    np.testing.assert_allclose(grad, probs * (1 - probs), rtol=1e-10)
    d = backend.lib.Bernoulli(logits=backend.array(logits))
    (grad_value,) = backend.grad(lambda v: d.log_prob(v).sum(), np.zeros((3, 2)))
    np.testing.assert_allclose(grad_value, np.broadcast_to(logits, (3, 2)), rtol=1e-12)


def test_kl_divergences_are_exact(backend):
    kl_divergence = backend.lib.kl_divergence
    logits = np.random.default_rng(8).normal(size=(2, 3, 5))
    logits_p, logits_q = backend.array(logits[0]), backend.array(logits[1])
    p = backend.lib.OneHotCategorical(logits=logits_p)
    q = backend.lib.OneHotCategorical(logits=logits_q)
    np.testing.assert_allclose(
        backend.numpy(kl_divergence(p, q)), kl_by_enumeration(backend, p, q.log_prob), rtol=1e-10
    )
    for categorical in [
        backend.dist.Categorical(logits=logits_q),
        backend.dist.Categorical(probs=backend.softmax(logits_q)),
    ]:

        def categorical_log_prob(value, categorical=categorical):
            return categorical.log_prob(value.argmax(-1))

        exact = kl_by_enumeration(backend, p, categorical_log_prob)
        np.testing.assert_allclose(backend.numpy(kl_divergence(p, categorical)), exact, rtol=1e-10)
        np.testing.assert_allclose(
            backend.numpy(kl_divergence(categorical, p)), backend.numpy(kl_divergence(q, p)), rtol=1e-10
        )
    b_p = backend.lib.Bernoulli(logits=logits_p[0])
    b_q_ours = backend.lib.Bernoulli(logits=logits_q[0])
    probs_q = backend.array(expit(logits[1, 0]))
    for b_q in [
        backend.lib.Bernoulli(probs=probs_q),
        backend.dist.Bernoulli(logits=logits_q[0]),
        backend.dist.Bernoulli(probs=probs_q),
    ]:
        np.testing.assert_allclose(
            backend.numpy(kl_divergence(b_p, b_q)), kl_by_enumeration(backend, b_p, b_q.log_prob), rtol=1e-10
        )
        np.testing.assert_allclose(
            backend.numpy(kl_divergence(b_q, b_p)), kl_by_enumeration(backend, b_q_ours, b_p.log_prob), rtol=1e-10
        )


def test_kl_with_zero_probabilities(backend):
    kl_divergence = backend.lib.kl_divergence
    p = backend.lib.OneHotCategorical(probs=backend.array([0.5, 0.5, 0.0]))
    q = backend.lib.OneHotCategorical(probs=backend.array([0.25, 0.0, 0.75]))
    assert float(kl_divergence(p, q)) == np.inf
    assert float(kl_divergence(p, p)) == 0.0
    r = backend.lib.OneHotCategorical(probs=backend.array([0.25, 0.25, 0.5]))
    assert float(kl_divergence(p, r)) == pytest.approx(np.log(2.0), rel=1e-12)


@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_from_host_keeps_the_hosts_parameterisation(backend, parameter):
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    value = probs if parameter == "probs" else np.log(probs) - 1.0
    estimator = backend.lib.ReinMax()
    host_categorical = backend.dist.Categorical(**{parameter: backend.array(value)})
    ours = backend.lib.OneHotCategorical.from_host(host_categorical, estimator)
    assert type(ours) is backend.lib.OneHotCategorical and ours.estimator is estimator
    np.testing.assert_allclose(
        backend.numpy(getattr(ours, parameter)), backend.numpy(getattr(host_categorical, parameter))
    )
    np.testing.assert_allclose(backend.numpy(ours.probs), probs, rtol=1e-12)
    host_bernoulli = backend.dist.Bernoulli(**{parameter: backend.array(value[:, 0])})
    ours = backend.lib.Bernoulli.from_host(host_bernoulli, estimator)
    assert type(ours) is backend.lib.Bernoulli and ours.estimator is estimator
    np.testing.assert_allclose(
        backend.numpy(getattr(ours, parameter)), backend.numpy(getattr(host_bernoulli, parameter))
    )


def test_mode_guide_parameter_and_guide(backend):
    """The registry protocol of the two classes: the mode is a value of the support (the first
    category on a tie, never NaN), the guide's initial parameter reproduces the prior, and the guide
    keeps the family."""
    estimator = backend.lib.StraightThrough()
    mode = backend.numpy(
        backend.lib.OneHotCategorical(probs=backend.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.0, 0.1, 0.9]])).mode
    )
    np.testing.assert_array_equal(mode, np.eye(3)[[1, 0, 2]])
    assert mode.dtype == np.float64
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    prior = backend.lib.OneHotCategorical(probs=backend.array(probs))
    init, constraint = prior.guide_parameter()
    assert constraint is backend.dist.constraints.real
    guide = prior.guide(init, estimator)
    assert type(guide) is backend.lib.OneHotCategorical and guide.estimator is estimator
    np.testing.assert_allclose(backend.numpy(guide.probs), probs, rtol=1e-12)

    mode = backend.numpy(backend.lib.Bernoulli(probs=backend.array([0.0, 0.2, 0.5, 0.9, 1.0])).mode)
    np.testing.assert_array_equal(mode, [0.0, 0.0, 0.0, 1.0, 1.0])
    assert mode.dtype == np.float64
    bernoulli_probs = np.array([0.2, 0.5, 0.9, 0.7])
    prior = backend.lib.Bernoulli(probs=backend.array(bernoulli_probs))
    init, constraint = prior.guide_parameter()
    assert constraint is backend.dist.constraints.real and tuple(init.shape) == (4,)
    guide = prior.guide(init, estimator)
    assert type(guide) is backend.lib.Bernoulli and guide.estimator is estimator
    np.testing.assert_allclose(backend.numpy(guide.probs), bernoulli_probs, rtol=1e-12)


@pytest.mark.parametrize("name", ["OneHotCategorical", "Bernoulli"])
def test_bad_input_names_the_argument(backend, name):
    cls = getattr(backend.lib, name)
    shape = (3,) if name == "OneHotCategorical" else ()
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls(probs=backend.array(np.full(shape, 0.3)), logits=backend.array(np.zeros(shape)))
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls()
    with pytest.raises(ValueError, match="logits"):
        cls(logits=backend.array(np.full(shape, np.nan)))
    with pytest.raises(ValueError, match="estimator"):
        cls(logits=backend.array(np.zeros(shape)), estimator="redge")
    with pytest.raises(ValueError, match="probs"):
        cls(probs=backend.array(np.full(shape, 1.5)))


def test_bad_values_in_log_prob(backend):
    d = backend.lib.OneHotCategorical(logits=backend.array(np.zeros(3)))
    for bad in ([0.5, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="value"):
            d.log_prob(backend.array(bad))
    with pytest.raises(ValueError, match="probs"):
        backend.lib.OneHotCategorical(probs=backend.array([0.5, 0.6, 0.1]))
    with pytest.raises(ValueError, match="value"):
        backend.lib.Bernoulli(logits=backend.array(np.zeros(2))).log_prob(backend.array([0.5, 1.0]))


def test_a_minus_inf_logit_masks_a_category(backend):
    """A category masked by a ``-inf`` logit is valid, has probability exactly zero and is never
    drawn; ``+inf``, NaN and a fully masked vector are bad input naming ``logits``."""
    d = backend.lib.OneHotCategorical(logits=backend.array([0.0, -np.inf, 0.5]), estimator=backend.lib.ReinMax())
    value = backend.numpy(backend.sample(d, backend.rng(5).next(), (1000,)))
    assert value[:, 1].sum() == 0 and float(d.log_prob(backend.array([0.0, 1.0, 0.0]))) == -np.inf
    for bad in ([np.inf, 0.0, 0.0], [np.nan, 0.0, 0.0], [-np.inf] * 3):
        with pytest.raises(ValueError, match="logits"):
            backend.lib.OneHotCategorical(logits=backend.array(bad))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_one_hot_categorical_validates_half_precision_parameters_in_float32(backend, dtype):
    """Issue 13 class 4: torch normalises float16/bfloat16 logits in their own precision and then
    refused 2-5 % of valid rows under validation; NumPyro refused float16 probs that sum to one."""
    logits = backend.array(3 * np.random.default_rng(0).normal(size=(400, 5)), dtype)
    d = backend.lib.OneHotCategorical(logits=logits, estimator=backend.lib.StraightThrough())
    value = backend.sample(d, backend.rng(0).next())
    assert backend.dtype_name(value) == dtype
    assert np.all(np.isfinite(backend.numpy(d.log_prob(value))))
    # Each of these float16 numbers is exact, and they sum to exactly one.
    probs = backend.array([0.25, 0.125, 0.625], dtype)
    d = backend.lib.OneHotCategorical(probs=probs)
    assert backend.numpy(d.log_prob(backend.array([0.0, 0.0, 1.0], dtype))) == pytest.approx(np.log(0.625), abs=1e-3)
    with pytest.raises(ValueError, match="probs.*sum to 1"):
        backend.lib.OneHotCategorical(probs=backend.array([0.25, 0.25, 0.625], dtype))


def test_probs_not_summing_to_one_is_explained(backend):
    """Issue 13 class 10: NumPyro said only "invalid probs parameter"; both hosts say why."""
    with pytest.raises(ValueError, match="probs must be non-negative and sum to 1"):
        backend.lib.OneHotCategorical(probs=backend.array([0.5, 0.6]))


def test_constant_parameters_are_validated_under_jit(backend):
    """Issue 13 class 11: under ``jax.jit`` NumPyro validated nothing (its checks see tracers), so
    probs [0.5, 0.6] and Bernoulli probs 1.5 passed; constants (arrays made outside the function,
    NumPy arrays, numbers) are now checked while tracing. PyTorch runs the function as is."""
    key = backend.rng(0).next()
    for cls, parameters in [
        (backend.lib.OneHotCategorical, {"probs": backend.array([0.5, 0.6])}),
        (backend.lib.Bernoulli, {"probs": backend.array(1.5)}),
        (backend.lib.Bernoulli, {"logits": backend.array(float("nan"))}),
    ]:
        (name,) = parameters
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            backend.jit(lambda cls=cls, parameters=parameters: backend.sample(cls(**parameters), key))()
