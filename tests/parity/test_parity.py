"""The same deterministic core gives the same numbers in PyTorch and JAX (float64, same noise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import numpyro_redge
import pyro_redge
from numpyro_redge import _math as jax_math
from pyro_redge import _math as torch_math
from redge_core.schedules import ddim_schedule
from tests import cases


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def draw_noise(estimator, rng, shape):
    """Noise in the layout ``apply`` takes, as float64 numpy arrays."""
    uniform = rng.uniform(size=shape[:-1] + (1,))
    if isinstance(estimator, pyro_redge.GumbelSoftmax):
        return (rng.gumbel(size=shape),)
    if isinstance(estimator, pyro_redge.ReDGE):
        return (rng.normal(size=shape), uniform)
    if isinstance(estimator, pyro_redge.GumbelRao):
        return (uniform, rng.exponential(size=(estimator.num_draws,) + shape))
    if isinstance(estimator, pyro_redge.ExactReDGE):
        return (uniform, rng.normal(size=(estimator.num_chains,) + shape))
    return (uniform,)


def both(estimator_id, table=cases.ESTIMATORS):
    name, kwargs = table[estimator_id]
    return getattr(pyro_redge, name)(**kwargs), getattr(numpyro_redge, name)(**kwargs)


@pytest.mark.parametrize("shape", [(7, 10), (2, 3, 5), (4, 2)])
@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_same_noise_gives_same_sample_and_gradient(estimator_id, shape):
    check_same_noise_gives_same_sample_and_gradient(*both(estimator_id), shape)


@pytest.mark.parametrize("estimator_id", list(cases.EXACT_REDGE))
def test_exact_redge_same_noise_gives_same_sample_and_gradient(estimator_id):
    """ExactReDGE's variants, on one shape: the chains' code is ReDGE's, checked on every shape above."""
    check_same_noise_gives_same_sample_and_gradient(*both(estimator_id, cases.EXACT_REDGE), (2, 3, 5))


def check_same_noise_gives_same_sample_and_gradient(torch_estimator, jax_estimator, shape):
    rng = np.random.default_rng(0)
    logits = 2 * rng.normal(size=shape)
    logits[..., 0] = -np.inf  # a masked category in every row
    cotangent = rng.normal(size=shape)
    noise = draw_noise(torch_estimator, rng, shape)

    torch_logits = torch.tensor(logits, requires_grad=True)
    torch_sample = torch_estimator.apply(torch_logits, *map(torch.tensor, noise))
    (torch_grad,) = torch.autograd.grad((torch_sample * torch.tensor(cotangent)).sum(), torch_logits)

    jax_noise = tuple(map(jnp.asarray, noise))
    jax_sample = jax_estimator.apply(jnp.asarray(logits), *jax_noise)
    jax_grad = jax.jit(jax.grad(lambda x: (jax_estimator.apply(x, *jax_noise) * cotangent).sum()))(jnp.asarray(logits))

    assert np.array_equal(torch_sample.detach().numpy(), np.asarray(jax_sample))
    np.testing.assert_allclose(torch_grad.numpy(), np.asarray(jax_grad), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("num_steps", [2, 3, 5, 9, 50])
@pytest.mark.parametrize("t1", [0.05, 0.3, 0.5, 0.77, 0.99])
def test_the_shared_schedule_matches_torch_linspace(num_steps, t1):
    """Both hosts read the one NumPy schedule of ``redge_core``; it equals the reference's
    float32 ``torch.linspace``."""
    alphas = torch.cat((torch.tensor([1.0]), torch.linspace(1 - t1, 1e-4, num_steps - 1)))
    assert ddim_schedule(num_steps, t1).alphas == tuple(alphas.tolist())
    assert ddim_schedule(num_steps, t1).sigmas == tuple((1 - alphas).tolist())


def test_inverse_cdf_sampling_is_identical():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(8), size=1000)
    probs[:, [2, 7]] = 0.0
    uniform = rng.uniform(size=(1000, 1))
    uniform[:5] = [[0.0], [1 - 2**-53], [1 - 2**-30], [0.5], [1e-300]]
    ours = torch_math.categorical_from_uniform(torch.tensor(probs), torch.tensor(uniform)).numpy()
    theirs = np.asarray(jax_math.categorical_from_uniform(jnp.asarray(probs), jnp.asarray(uniform)))
    assert np.array_equal(ours, theirs)
    assert not np.isin(ours, [2, 7]).any()
    expected = (np.cumsum(probs, -1) <= uniform * probs.sum(-1, keepdims=True)).sum(-1, keepdims=True)
    assert np.array_equal(ours[5:], expected[5:])


def test_log_prob_and_kl_are_identical():
    rng = np.random.default_rng(2)
    probs_p = rng.dirichlet(np.ones(6), size=4)
    probs_q = rng.dirichlet(np.ones(6), size=4)
    probs_p[0, 1] = 0.0
    probs_p[0] /= probs_p[0].sum()
    values = np.eye(6)[rng.integers(0, 6, size=4)]
    torch_p = pyro_redge.OneHotCategorical(probs=torch.tensor(probs_p))
    torch_q = pyro_redge.OneHotCategorical(logits=torch.tensor(np.log(probs_q)))
    jax_p = numpyro_redge.OneHotCategorical(probs=jnp.asarray(probs_p))
    jax_q = numpyro_redge.OneHotCategorical(logits=jnp.asarray(np.log(probs_q)))
    np.testing.assert_allclose(
        torch_p.log_prob(torch.tensor(values)).numpy(), jax_p.log_prob(jnp.asarray(values)), rtol=1e-12
    )
    np.testing.assert_allclose(
        pyro_redge.kl_divergence(torch_p, torch_q).numpy(), numpyro_redge.kl_divergence(jax_p, jax_q), rtol=1e-12
    )
    np.testing.assert_allclose(
        pyro_redge.kl_divergence(torch_q, torch_p).numpy(), numpyro_redge.kl_divergence(jax_q, jax_p), rtol=1e-12
    )


@pytest.mark.parametrize("case", list(cases.COUNT_CASES))
def test_count_truncation_log_pmf_and_samples_are_identical(case):
    name, kwargs = cases.COUNT_CASES[case]
    torch_count = getattr(pyro_redge, name)(
        **{k: torch.tensor(v) for k, v in kwargs.items()}, estimator=pyro_redge.ReinMax()
    )
    jax_count = getattr(numpyro_redge, name)(
        **{k: jnp.asarray(v) for k, v in kwargs.items()}, estimator=numpyro_redge.ReinMax()
    )
    assert torch_count.truncation_point() == jax_count.truncation_point()
    # 1 − CDF after summing up to ~700 float64 terms whose lgamma differ in the last bits between
    # the libraries: resolved to ~1e-13 absolute.
    np.testing.assert_allclose(torch_count.dropped_mass().numpy(), jax_count.dropped_mass(), rtol=1e-6, atol=1e-12)
    torch_values, torch_log_pmf = torch_count._support_and_log_pmf()
    jax_values, jax_log_pmf = jax_count._support_and_log_pmf()
    np.testing.assert_array_equal(torch_values.numpy(), jax_values)
    np.testing.assert_allclose(torch_log_pmf.numpy(), jax_log_pmf, rtol=1e-10, atol=1e-10)
    uniform = np.random.default_rng(3).uniform(size=(500,) + tuple(torch_log_pmf.shape[:-1]) + (1,))
    shape = (500,) + tuple(torch_log_pmf.shape)
    torch_samples = (
        torch_count.estimator.apply(torch_log_pmf.expand(shape), torch.tensor(uniform)) * torch_values
    ).sum(-1)
    jax_samples = (
        jax_count.estimator.apply(jnp.broadcast_to(jax_log_pmf, shape), jnp.asarray(uniform)) * jax_values
    ).sum(-1)
    np.testing.assert_array_equal(torch_samples.numpy(), jax_samples)
    np.testing.assert_allclose(
        pyro_redge.kl_divergence(torch_count, torch_count.expand(torch_count.batch_shape)).numpy(), 0.0, atol=1e-12
    )


def test_k_subset_log_normalizer_marginals_and_exact_samples_are_identical():
    rng = np.random.default_rng(4)
    logits = 3 * rng.normal(size=(5, 9))
    logits[0, :3] = [1e3, -1e3, 0.0]
    torch_d = pyro_redge.KSubset(torch.tensor(logits), 4)
    jax_d = numpyro_redge.KSubset(jnp.asarray(logits), 4)
    np.testing.assert_allclose(torch_d.log_normalizer.numpy(), jax_d.log_normalizer, rtol=1e-12)
    np.testing.assert_allclose(torch_d.marginals.numpy(), jax_d.marginals, rtol=1e-9, atol=1e-12)
    uniform = rng.uniform(size=(200, 5, 9))
    shape = (200, 5, 9)
    torch_samples = torch_math.subset_from_uniform(torch.tensor(logits).expand(shape), 4, torch.tensor(uniform))
    jax_samples = jax_math.subset_from_uniform(jnp.broadcast_to(jnp.asarray(logits), shape), 4, jnp.asarray(uniform))
    np.testing.assert_array_equal(torch_samples.numpy(), jax_samples)


@pytest.mark.parametrize("estimator_id", list(cases.SUBSET_ESTIMATORS))
@pytest.mark.parametrize("k", [1, 3])
def test_subset_estimators_give_the_same_sample_and_gradient(estimator_id, k):
    name, kwargs = cases.SUBSET_ESTIMATORS[estimator_id]
    torch_estimator, jax_estimator = getattr(pyro_redge, name)(**kwargs), getattr(numpyro_redge, name)(**kwargs)
    rng = np.random.default_rng(5)
    logits, cotangent = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    # The same noise: Gumbel or Sum-of-Gamma perturbations, or the exact sampler's uniforms.
    torch.manual_seed(5)
    (torch_noise,) = torch_estimator.sample_noise(torch.tensor(logits), k=k)
    noise = torch_noise.numpy()
    torch_logits = torch.tensor(logits, requires_grad=True)
    torch_sample = torch_estimator.apply(torch_logits, torch.tensor(noise), k=k)
    (torch_grad,) = torch.autograd.grad((torch_sample * torch.tensor(cotangent)).sum(), torch_logits)
    jax_sample = jax_estimator.apply(jnp.asarray(logits), jnp.asarray(noise), k=k)
    jax_grad = jax.grad(lambda x: (jax_estimator.apply(x, jnp.asarray(noise), k=k) * cotangent).sum())(
        jnp.asarray(logits)
    )
    np.testing.assert_array_equal(torch_sample.detach().numpy(), jax_sample)
    np.testing.assert_allclose(torch_grad.numpy(), jax_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("noise", ["gumbel", "sum_of_gamma"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_aimle_state_follows_the_same_trajectory_in_both_hosts(noise, dtype):
    """The same noise at every step gives the same observed densities and the same states, bit
    for bit: the density is formed from exact integers and the update is the same arithmetic."""
    torch_estimator = pyro_redge.AIMLE(target_density=2.0, step=0.05, noise=noise)
    jax_estimator = numpyro_redge.AIMLE(target_density=2.0, step=0.05, noise=noise)
    torch_state = torch_estimator.init_state(getattr(torch, dtype))
    jax_state = jax_estimator.init_state(dtype)
    rng = np.random.default_rng(6)
    logits, weights = rng.normal(size=(16, 9)).astype(dtype), rng.normal(size=(16, 9)).astype(dtype)
    torch.manual_seed(6)
    for _ in range(40):
        (noise_draw,) = torch_estimator.sample_noise(torch.tensor(logits), k=3)
        beta = torch_state.beta.clone().requires_grad_()
        sample = torch_estimator.apply(torch.tensor(logits), noise_draw, k=3, beta=beta)
        (torch_density,) = torch.autograd.grad((sample * torch.tensor(weights)).sum(), beta)
        jax_noise = jnp.asarray(noise_draw.numpy())
        jax_density = jax.grad(
            lambda b, noise=jax_noise: (jax_estimator.apply(jnp.asarray(logits), noise, k=3, beta=b) * weights).sum()
        )(jax_state.beta)
        assert float(torch_density) == float(jax_density)
        torch_state = torch_estimator.update_state(torch_state, torch_density)
        jax_state = jax_estimator.update_state(jax_state, jax_density)
        assert float(torch_state.beta) == float(jax_state.beta)
        assert float(torch_state.density) == float(jax_state.density)
    assert float(torch_state.beta) != 1.0


@pytest.mark.parametrize("shape", [(7, 10), (2, 3, 5), (4, 2), (3, 1)])
def test_disarm_draws_the_same_category_through_the_same_tree(shape):
    """DisARM's categorical draw: the same tree log-odds (and derivatives) and, for the same node
    uniforms and their antithetic partners, the same categories in both hosts."""
    rng = np.random.default_rng(1)
    logits = 2 * rng.normal(size=shape)
    masked = shape[-1] > 1
    logits[..., 0] = -np.inf if masked else logits[..., 0]  # a masked category in every row
    uniform = rng.uniform(size=shape[:-1] + (shape[-1] - 1,))
    cotangent = rng.normal(size=shape[:-1] + (shape[-1] - 1,))
    torch_logits = torch.tensor(logits, requires_grad=True)
    torch_log_odds = torch_math.tree_log_odds(torch_logits)
    (torch_grad,) = torch.autograd.grad((torch_log_odds * torch.tensor(cotangent)).sum(), torch_logits)
    jax_log_odds = jax.jit(jax_math.tree_log_odds)(jnp.asarray(logits))
    jax_grad = jax.jit(jax.grad(lambda x: (jax_math.tree_log_odds(x) * cotangent).sum()))(jnp.asarray(logits))
    np.testing.assert_allclose(torch_log_odds.detach().numpy(), np.asarray(jax_log_odds), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(torch_grad.numpy(), np.asarray(jax_grad), rtol=1e-12, atol=1e-12)
    for noise in (uniform, 1 - uniform):
        torch_sample = pyro_redge.DisARM().apply(torch.tensor(logits), torch.tensor(noise))
        jax_sample = jax.jit(numpyro_redge.DisARM().apply)(jnp.asarray(logits), jnp.asarray(noise))
        assert np.array_equal(torch_sample.numpy(), np.asarray(jax_sample))
        assert np.all(torch_sample.numpy().sum(-1) == 1) and not (masked and torch_sample.numpy()[..., 0].any())
