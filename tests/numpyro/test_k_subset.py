import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import numpyro_redge
from numpyro_redge._math import log_elementary_symmetric
from numpyro_redge.kl import kl_divergence
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def make_subset_estimator(estimator_id):
    name, kwargs = cases.SUBSET_ESTIMATORS[estimator_id]
    return getattr(numpyro_redge, name)(**kwargs)


@pytest.mark.parametrize("n, k", [(1, 1), (5, 1), (6, 2), (8, 4), (12, 4), (12, 12)])
def test_log_prob_sums_to_one_over_all_subsets(n, k):
    d = numpyro_redge.KSubset(3 * jax.random.normal(jax.random.PRNGKey(0), (2, n), jnp.float64), k)
    support = d.enumerate_support()
    assert support.shape == (math.comb(n, k), 2, n)
    probs = jnp.exp(d.log_prob(support))
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(d.marginals, (probs[..., None] * support).sum(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d.marginals.sum(-1), float(k), rtol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_log_normalizer_at_scale_against_a_float64_reference(scale):
    rng = np.random.default_rng(1)
    logits = scale * rng.uniform(-1, 1, size=(2, 2000))
    logits[:, :5] = [1e3, -1e3, 1e3, -1e3, 0.0]
    reference = cases.reference_log_elementary_symmetric(logits, 200)
    np.testing.assert_allclose(log_elementary_symmetric(jnp.asarray(logits), 200), reference, rtol=1e-12)
    np.testing.assert_allclose(log_elementary_symmetric(jnp.asarray(logits, jnp.float32), 200), reference, rtol=1e-6)
    marginals = numpyro_redge.KSubset(jnp.asarray(logits), 200).marginals
    # Reverse mode through 2 000 recursion steps at logits of ±1e3: ~1e-11 relative rounding.
    np.testing.assert_allclose(marginals.sum(-1), 200.0, rtol=1e-9)
    # Probabilities, up to rounding: the marginals are exponentials of differences of entries of
    # size |log e_k| ≈ 2·10⁵ here, each good to 2·10⁵ × 1.1e-16 ≈ 2e-11; bound 1e-9.
    assert bool(jnp.all((marginals >= -1e-9) & (marginals <= 1 + 1e-9)))


def test_exact_sampling_matches_the_pmf_and_perturb_and_map_deviation_is_measured(report):
    logits = jnp.asarray(cases.SUBSET_LAW_LOGITS)
    d = numpyro_redge.KSubset(logits, cases.SUBSET_LAW_K, estimator=numpyro_redge.MarginalStraightThrough())
    subsets = list(itertools.combinations(range(len(logits)), cases.SUBSET_LAW_K))
    pmf = np.array([math.exp(float(logits[np.array(s)].sum() - d.log_normalizer)) for s in subsets])

    def frequencies(samples):
        counts = dict.fromkeys(subsets, 0)
        for s in cases.subset_index(samples):
            counts[s] += 1
        return np.array([counts[s] for s in subsets], float)

    key_exact, key_estimator, key = jax.random.split(jax.random.PRNGKey(2), 3)
    for label, samples in [
        ("sample_exact", d.sample_exact(key_exact, (cases.SUBSET_DRAWS,))),
        ("MarginalStraightThrough", d.sample(key_estimator, (cases.SUBSET_DRAWS,))),
    ]:
        counts = frequencies(samples)
        assert stats.chisquare(counts, pmf * counts.sum()).pvalue > cases.FALSE_ALARM, label
    for estimator_id in ("imle", "imle_sum_of_gamma", "aimle"):
        samples = numpyro_redge.KSubset(logits, cases.SUBSET_LAW_K, make_subset_estimator(estimator_id)).sample(key, (cases.SUBSET_DRAWS,))
        counts = frequencies(samples)
        report(
            f"jax   KSubset(n=6, k=2) {estimator_id:18s}: TV(perturb-and-MAP law, exact pmf) = "
            f"{cases.total_variation(counts / counts.sum(), pmf):.4f} (Monte-Carlo floor ≈ 0.005)"
        )


def test_kl_between_k_subsets_is_exact():
    key_p, key_q = jax.random.split(jax.random.PRNGKey(3))
    p = numpyro_redge.KSubset(jax.random.normal(key_p, (3, 7), jnp.float64), 3)
    q = numpyro_redge.KSubset(jax.random.normal(key_q, (3, 7), jnp.float64), 3)
    support = p.enumerate_support()
    log_p, log_q = p.log_prob(support), q.log_prob(support)
    np.testing.assert_allclose(kl_divergence(p, q), (jnp.exp(log_p) * (log_p - log_q)).sum(0), rtol=1e-10)
    np.testing.assert_allclose(kl_divergence(p, p), 0.0, atol=1e-12)
    np.testing.assert_allclose(p.entropy(), -(jnp.exp(log_p) * log_p).sum(0), rtol=1e-10)


@pytest.mark.parametrize("estimator_id", list(cases.SUBSET_ESTIMATORS))
def test_gradient_against_enumeration_and_optimisation_to_the_target(estimator_id, report):
    target = jnp.asarray(cases.SUBSET_OPT_TARGET)
    key_logits, key_draws, key_init, key_steps = jax.random.split(jax.random.PRNGKey(4), 4)
    logits = 0.5 * jax.random.normal(key_logits, (10,), jnp.float64)
    estimator = make_subset_estimator(estimator_id)

    def expected_loss(x):
        d = numpyro_redge.KSubset(x, cases.SUBSET_OPT_K)
        support = d.enumerate_support()
        return (jnp.exp(d.log_prob(support)) * ((support - target) ** 2).sum(-1)).sum()

    exact = jax.grad(expected_loss)(logits)
    draws = 20_000

    def sampled_loss(x):
        z = numpyro_redge.KSubset(x, cases.SUBSET_OPT_K, estimator).sample(key_draws)
        return ((z - target) ** 2).sum()

    mean = jax.jit(jax.grad(sampled_loss))(jnp.broadcast_to(logits, (draws, 10))).mean(0)
    cosine = float(mean @ exact / (jnp.linalg.norm(mean) * jnp.linalg.norm(exact)))
    report(f"jax   KSubset(n=10, k=3) {estimator_id:26s}: cosine(mean gradient, exact) {cosine:+.3f}")
    assert cosine > 0.5, "the mean surrogate gradient does not point the exact gradient's way"

    # Small random logits, not zeros: AIMLE's step vanishes at θ = 0.
    parameters = 0.01 * jax.random.normal(key_init, (10,), jnp.float64)
    optimizer = __import__("optax").adam(0.05)

    @jax.jit
    def step(parameters, state, key):
        def loss(p):
            z = numpyro_redge.KSubset(jnp.broadcast_to(p, (16, 10)), cases.SUBSET_OPT_K, estimator).sample(key)
            return ((z - target) ** 2).sum(-1).mean()

        updates, state = optimizer.update(jax.grad(loss)(parameters), state)
        return parameters + updates, state

    state = optimizer.init(parameters)
    for key in jax.random.split(key_steps, cases.SUBSET_OPT_STEPS):
        parameters, state = step(parameters, state, key)
    reached = jnp.zeros(10).at[jax.lax.top_k(parameters, cases.SUBSET_OPT_K)[1]].set(1.0)
    assert bool(jnp.all(reached == target)), f"{estimator_id} ended at {reached}"


@pytest.mark.parametrize("target_density, direction", [(0.5, -1), (6.0, +1)])
def test_aimle_beta_moves_the_density_towards_the_target(target_density, direction):
    """The explicit state threaded through a scripted run: the cotangent of β is the observed
    density, and update_state moves β the right way and the running density towards the target."""
    estimator = numpyro_redge.AIMLE(target_density=target_density, step=0.05, initial_beta=1.0)
    key_logits, key_weights, key_steps = jax.random.split(jax.random.PRNGKey(5), 3)
    logits = jax.random.normal(key_logits, (32, 12), jnp.float64)
    weights = jax.random.normal(key_weights, (32, 12), jnp.float64)

    @jax.jit
    def observed_density(beta, key):
        (noise,) = estimator.subset_noise(key, logits, 4)
        return jax.grad(lambda b: (estimator.apply_subset(logits, 4, noise, beta=b) * weights).sum())(beta)

    state = estimator.init_state()
    densities = []
    for key in jax.random.split(key_steps, 150):
        state = estimator.update_state(state, observed_density(state.beta, key))
        densities.append(float(state.density))
    assert (float(state.beta) - 1.0) * direction > 0
    assert abs(densities[-1] - target_density) < abs(densities[0] - target_density)


def test_imle_matches_its_definition():
    estimator = numpyro_redge.IMLE(temperature=0.7, lam=3.0, samples=4)
    key_logits, key_noise, key_cotangent = jax.random.split(jax.random.PRNGKey(6), 3)
    logits = jax.random.normal(key_logits, (5, 8), jnp.float64)
    (noise,) = estimator.subset_noise(key_noise, logits, 3)
    assert estimator.apply_subset(logits, 3, noise).shape == (4, 5, 8)
    cotangent = jax.random.normal(key_cotangent, (4, 5, 8), jnp.float64)
    grad = jax.grad(lambda x: (estimator.apply_subset(x, 3, noise) * cotangent).sum())(logits)

    def top3(x):
        return jnp.zeros_like(x).at[..., :].set(0.0) + jax.nn.one_hot(jax.lax.top_k(x, 3)[1], 8).sum(-2)

    expected = ((top3(logits + 0.7 * noise) - top3(logits - 3.0 * cotangent + 0.7 * noise)) / 3.0).mean(0)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_categorical_distributions_accept_subset_estimators():
    key_logits, key, key_law = jax.random.split(jax.random.PRNGKey(7), 3)
    logits = jax.random.normal(key_logits, (4, 5))
    (uniform,) = numpyro_redge.StraightThrough().sample_noise(key, logits)
    assert bool(jnp.all(numpyro_redge.MarginalStraightThrough().apply(logits, uniform) == numpyro_redge.StraightThrough().apply(logits, uniform)))
    law = jnp.broadcast_to(jnp.asarray(cases.LAW_LOGITS), (cases.LAW_DRAWS, 10))
    counts = np.asarray(numpyro_redge.OneHotCategorical(logits=law, estimator=numpyro_redge.IMLE()).sample(key_law).sum(0), float)
    probs = np.exp(cases.LAW_LOGITS) / np.exp(cases.LAW_LOGITS).sum()
    assert stats.chisquare(counts, probs * counts.sum()).pvalue > cases.FALSE_ALARM
    for estimator in (numpyro_redge.AIMLE(), numpyro_redge.IMLE(noise="sum_of_gamma")):
        for cls in (numpyro_redge.OneHotCategorical, numpyro_redge.Bernoulli):
            grad = jax.grad(lambda x: (cls(logits=x, estimator=estimator).sample(key) * jnp.arange(5.0)).sum())(logits)
            assert bool(jnp.all(jnp.isfinite(grad)))


def test_k_subset_bad_input():
    logits = jnp.zeros(6)
    for build, argument in [
        (lambda: numpyro_redge.KSubset(logits, 0), "k"),
        (lambda: numpyro_redge.KSubset(logits, 7), "k"),
        (lambda: numpyro_redge.KSubset(logits, 2.0), "k"),
        (lambda: numpyro_redge.KSubset(logits, 2, estimator=numpyro_redge.ReDGE()), "estimator"),
        (lambda: numpyro_redge.KSubset(logits, 2, estimator=numpyro_redge.IMLE(samples=3)), "estimator"),
        (lambda: numpyro_redge.KSubset(logits, 2).log_prob(jnp.array([1.0, 1, 1, 0, 0, 0])), "value"),
        (lambda: numpyro_redge.KSubset(logits, 2).log_prob(jnp.array([0.5, 1.5, 0, 0, 0, 0])), "value"),
        (lambda: numpyro_redge.KSubset(jnp.full((6,), jnp.nan), 2), "logits"),
        (lambda: numpyro_redge.IMLE(noise="uniform"), "noise"),
        (lambda: numpyro_redge.IMLE(lam=0.0), "lam"),
        (lambda: numpyro_redge.IMLE(samples=0), "samples"),
        (lambda: numpyro_redge.AIMLE(target_density=0.0), "target_density"),
        (lambda: numpyro_redge.AIMLE(decay=1.0), "decay"),
        (lambda: numpyro_redge.ReDGE().sample_subset(jax.random.PRNGKey(0), logits, 2), "k-subsets"),
        (lambda: numpyro_redge.OneHotCategorical(logits=logits, estimator=numpyro_redge.IMLE(samples=2)), "estimator"),
    ]:
        with pytest.raises(ValueError, match=argument):
            build()
