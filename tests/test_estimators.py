"""Gradient estimators, each behaviour once for both hosts (the ``backend`` fixture): the law of the
hard samples, the surrogate gradients against closed forms, enumeration and the reference packages
``redge`` and ``reinmax`` for the same noise, dtypes, shapes and masked logits, the ``k`` argument,
and AIMLE's explicit state. Host mechanics (jit, vmap, non-contiguous tensors, SVI loops) live in
``tests/pyro/test_estimators_torch.py`` and ``tests/numpyro/test_estimators_jax.py``."""

import dataclasses
import functools
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import softmax

from redge_core.schedules import ddim_schedule
from tests import cases

DTYPES = ["float16", "bfloat16", "float32", "float64"]


def make(backend, estimator_id, table=cases.ESTIMATORS):
    name, kwargs = table[estimator_id]
    return getattr(backend.lib, name)(**kwargs)


def counts_of(backend, samples):
    samples = backend.numpy(samples).astype(np.float64)
    return samples.reshape(-1, samples.shape[-1]).sum(0)


def law_probs():
    return softmax(cases.LAW_LOGITS)


def sample_and_vjp(backend, estimator, logits, cotangent, *noise, k=1, compiled=False):
    """``estimator.apply(logits, *noise, k=k)`` (a host array) and the surrogate gradient of
    ``⟨apply(logits, *noise), cotangent⟩`` w.r.t. ``logits`` (NumPy), from one backward pass
    (``compiled``: one compiled program in JAX, faster for long chains of operations)."""

    def loss(x, cotangent, *noise):
        sample = estimator.apply(x, *noise, k=k)
        return (sample * cotangent).sum(), sample

    gradient = backend.gradient(loss, has_aux=True)
    if compiled:
        gradient = backend.jit(gradient)
    grad, sample = gradient(logits, backend.array(cotangent, None), *noise)
    return sample, backend.numpy(grad)


def vjp(backend, estimator, logits, cotangent, *noise, k=1):
    """The surrogate gradient of ``⟨apply(logits, *noise), cotangent⟩`` w.r.t. ``logits``, as NumPy."""
    return sample_and_vjp(backend, estimator, logits, cotangent, *noise, k=k)[1]


def softmax_vjp(probs, cotangent):
    """:math:`J(\\pi)^\\top g = \\pi \\odot (g - \\langle \\pi, g\\rangle)` in NumPy, on the last axis."""
    return probs * (cotangent - (probs * cotangent).sum(-1, keepdims=True))


def reinmax_closed_form(logits, sample, cotangent, temperature):
    """ReinMax's surrogate for given hard samples, written from the paper's formula (NumPy)."""
    midpoint = 0.5 * (softmax(logits / temperature, -1) + sample)
    return softmax_vjp(midpoint, 2 * cotangent) - softmax_vjp(softmax(logits, -1), 0.5 * cotangent)


def uniform_selecting(probs, index):
    """The inverse-CDF uniform that selects category ``index`` (..., 1): the midpoint of its cell."""
    cdf = probs.cumsum(-1)
    return (np.take_along_axis(cdf, index, -1) - 0.5 * np.take_along_axis(probs, index, -1)) / cdf[..., -1:]


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_estimators_are_immutable_and_hashable(backend, estimator_id):
    estimator = make(backend, estimator_id)
    assert estimator == make(backend, estimator_id) and hash(estimator) == hash(make(backend, estimator_id))
    if dataclasses.fields(estimator):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(estimator, dataclasses.fields(estimator)[0].name, 1)


@pytest.mark.parametrize("name, kwargs, argument", cases.BAD_ESTIMATOR_ARGUMENTS + cases.BAD_SUBSET_ESTIMATOR_ARGUMENTS)
def test_bad_hyperparameters_name_the_argument(backend, name, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        getattr(backend.lib, name)(**kwargs)


def test_integer_logits_are_rejected(backend):
    with pytest.raises(ValueError, match="logits"):
        backend.call(backend.lib.StraightThrough(), backend.array(np.zeros((3, 4)), "int32"), backend.rng(0).next())


# -- the k argument ----------------------------------------------------------------------------


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_estimators_without_subsets_reject_k_above_one(backend, estimator_id):
    estimator = make(backend, estimator_id)
    assert not estimator.supports_subsets
    logits = backend.array(np.zeros((2, 6)))
    key = backend.rng(0).next()
    noise = backend.sample_noise(estimator, logits, key)
    for attempt in (
        lambda: backend.call(estimator, logits, key, k=2),
        lambda: backend.sample_noise(estimator, logits, key, k=2),
        lambda: estimator.apply(logits, *noise, k=2),
    ):
        with pytest.raises(ValueError, match="k = 2: .*not defined for k-subsets"):
            attempt()


@pytest.mark.parametrize("estimator_id", list(cases.SUBSET_ESTIMATORS))
def test_subset_estimators_draw_k_hot_values_and_check_k(backend, estimator_id):
    estimator = make(backend, estimator_id, cases.SUBSET_ESTIMATORS)
    assert estimator.supports_subsets
    logits = backend.array(np.random.default_rng(0).normal(size=(40, 6)))
    sample = backend.numpy(backend.call(estimator, logits, backend.rng(0).next(), k=3))
    assert sample.shape == (40, 6) and np.all((sample == 0) | (sample == 1)) and np.all(sample.sum(-1) == 3)
    for k in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            backend.call(estimator, logits, backend.rng(0).next(), k=k)


# -- law of the hard samples -------------------------------------------------------------------


@pytest.mark.parametrize("estimator_id", cases.EXACT_LAW)
def test_exact_estimators_sample_the_categorical_law(backend, estimator_id):
    logits = backend.array(np.tile(cases.LAW_LOGITS, (cases.LAW_DRAWS, 1)))
    counts = counts_of(
        backend, backend.call(make(backend, estimator_id, cases.LAW_ESTIMATORS), logits, backend.rng(0).next())
    )
    assert stats.chisquare(counts, law_probs() * counts.sum()).pvalue > cases.FALSE_ALARM


def _reference_call(redge, reference, logits, kwargs):
    if reference == "reindge":
        return redge.SAMPLERS["reindge"](logits, n_steps=kwargs["num_steps"], t_1=kwargs["t1"])
    return getattr(redge, reference)(logits, kwargs["num_steps"], kwargs["t1"])


@functools.cache
def _reference_redge_counts(setting):
    """The reference ReDGE's category counts on the law logits (computed once for both hosts)."""
    torch = pytest.importorskip("torch")
    redge = pytest.importorskip("redge")
    kwargs, reference = cases.REDGE_SETTINGS[setting]
    torch.manual_seed(2)
    logits = torch.tensor(cases.LAW_LOGITS, dtype=torch.float32).expand(cases.LAW_DRAWS, -1).clone().requires_grad_()
    samples = _reference_call(redge, reference, logits, kwargs).detach().numpy()
    return samples.reshape(-1, 10).sum(0).astype(np.float64)


@pytest.mark.parametrize("setting", list(cases.REDGE_SETTINGS))
def test_redge_law_matches_the_reference_and_its_bias_is_recorded(backend, setting, report):
    kwargs, _ = cases.REDGE_SETTINGS[setting]
    theirs = _reference_redge_counts(setting)
    logits = backend.array(np.tile(cases.LAW_LOGITS, (cases.LAW_DRAWS, 1)), "float32")
    ours = counts_of(backend, backend.call(backend.lib.ReDGE(**kwargs), logits, backend.rng(2).next()))
    # Two-sample chi-square (homogeneity) test: the two laws are the same.
    assert stats.chi2_contingency(np.stack([ours, theirs])).pvalue > cases.FALSE_ALARM
    report(
        f"{backend.name:7s} ReDGE {kwargs}: TV(hard-sample law, Cat(softmax θ)) = "
        f"{cases.total_variation(ours / ours.sum(), law_probs()):.4f} (reference "
        f"{cases.total_variation(theirs / theirs.sum(), law_probs()):.4f}; Monte-Carlo floor ≈ 0.002 at "
        f"{cases.LAW_DRAWS} draws)"
    )


# -- gradients against the references, closed forms and enumeration ---------------------------


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("setting", list(cases.REDGE_SETTINGS))
def test_redge_gradient_equals_the_reference_for_the_same_noise(backend, setting, dtype, tolerance):
    """Our sample and gradient vs the reference ``redge`` fed our Gaussian noise and our hard
    sample (its own Gumbel draw replaced)."""
    torch = pytest.importorskip("torch")
    redge = pytest.importorskip("redge")
    kwargs, reference = cases.REDGE_SETTINGS[setting]
    rng = np.random.default_rng(1)
    logits = (2 * rng.normal(size=(6, 3, 10))).astype(dtype)
    cotangent = rng.normal(size=(6, 3, 10)).astype(dtype)
    gaussian = rng.normal(size=(6, 3, 10)).astype(dtype)
    uniform = rng.uniform(size=(6, 3, 1)).astype(dtype)
    estimator = backend.lib.ReDGE(**kwargs)
    noise = backend.array(gaussian, None), backend.array(uniform, None)
    sample, ours = sample_and_vjp(backend, estimator, backend.array(logits, None), cotangent, *noise)
    sample = backend.numpy(sample)

    ddim, reindge = sys.modules["redge.ddim"], sys.modules["redge.reindge"]

    def randn(*args, requires_grad=False, **_):
        return torch.tensor(gaussian).requires_grad_(requires_grad)

    def hard(probs):
        return torch.tensor(sample).to(probs.dtype)

    reference_logits = torch.tensor(logits).requires_grad_()
    with (
        mock.patch.object(torch, "randn", randn),
        mock.patch.object(ddim, "sample_one_hot_gumbel", hard),
        mock.patch.object(reindge, "sample_one_hot_gumbel", hard),
    ):
        reference_sample = _reference_call(redge, reference, reference_logits, kwargs)
    (theirs,) = torch.autograd.grad((reference_sample * torch.tensor(cotangent)).sum(), reference_logits)
    assert np.array_equal(sample, reference_sample.detach().numpy())
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_straight_through_gradient_is_the_softmax_jacobian(backend, dtype):
    rng = np.random.default_rng(3)
    logits = backend.array(rng.normal(size=(5, 4, 7)), dtype)
    cotangent = backend.array(rng.normal(size=(5, 4, 7)), dtype)
    estimator = backend.lib.StraightThrough()
    noise = backend.sample_noise(estimator, logits, backend.rng(3).next())
    ours = vjp(backend, estimator, logits, cotangent, *noise)
    (expected,) = backend.grad(lambda x: (backend.softmax(x) * cotangent).sum(), logits)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=4 * np.finfo(dtype).eps)


def test_gumbel_softmax_gradient_is_that_of_the_relaxed_sample(backend):
    rng = np.random.default_rng(4)
    logits = backend.array(rng.normal(size=(5, 7)))
    cotangent = backend.array(rng.normal(size=(5, 7)))
    estimator = backend.lib.GumbelSoftmax(temperature=0.7)
    (gumbel,) = backend.sample_noise(estimator, logits, backend.rng(4).next())
    sample = backend.numpy(estimator.apply(logits, gumbel))
    assert np.array_equal(sample.argmax(-1), (backend.numpy(logits) + backend.numpy(gumbel)).argmax(-1))
    ours = vjp(backend, estimator, logits, cotangent, gumbel)
    (expected,) = backend.grad(lambda x: (backend.softmax((x + gumbel) / 0.7) * cotangent).sum(), logits)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14)


def conditional_gumbel_closed_form(logits, index, exponentials):
    """θ + G given argmax(θ + G) = index, by the top-down construction, in NumPy (float64)."""
    log_partition = np.logaddexp.reduce(logits, -1, keepdims=True)
    where = np.broadcast_to(index, exponentials.shape[:-1] + (1,))
    chosen = np.take_along_axis(exponentials, where, -1)
    perturbed = -np.log(exponentials * np.exp(-logits) + chosen / np.exp(log_partition))
    np.put_along_axis(perturbed, where, log_partition - np.log(chosen), -1)
    return perturbed


def test_gumbel_rao_averages_gumbel_softmax_over_conditional_gumbels(backend):
    """Per draw: the gradient is the mean over the M conditional draws of the Gumbel-softmax
    gradient at θ + G_m (closed form in NumPy), and argmax(θ + G_m) is the sample. In law: the
    conditional construction, with D ~ Cat(softmax θ), gives back unconditional Gumbels, checked by
    Kolmogorov-Smirnov tests of max(θ + G) ~ Gumbel(logsumexp θ) and of each G_j ~ Gumbel(0, 1)
    (20 000 draws, 7 tests at level 1e-4 each: false alarm < 1e-3)."""
    rng = np.random.default_rng(21)
    logits, cotangent = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    logits[1, 2] = -np.inf
    estimator = backend.lib.GumbelRao(temperature=0.7, num_draws=4)
    uniform, exponentials = backend.sample_noise(estimator, backend.array(logits), backend.rng(21).next())
    sample, ours = sample_and_vjp(backend, estimator, backend.array(logits), cotangent, uniform, exponentials)
    index = backend.numpy(sample).argmax(-1)[:, None]
    perturbed = conditional_gumbel_closed_form(logits, index, backend.numpy(exponentials))
    assert np.all(perturbed.argmax(-1) == index[:, 0])
    expected = softmax_vjp(softmax(perturbed / 0.7, -1), cotangent).mean(0) / 0.7
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-14)
    assert ours[1, 2] == 0.0

    draws = 20_000
    theta = np.array([1.5, 0.2, -0.7, 0.0, 0.9, -2.0])
    index = rng.choice(6, size=(draws, 1), p=softmax(theta))
    perturbed = conditional_gumbel_closed_form(theta, index, rng.exponential(size=(draws, 6)))
    p_values = [stats.kstest(perturbed.max(-1), stats.gumbel_r(loc=np.logaddexp.reduce(theta)).cdf).pvalue]
    p_values += [stats.kstest(perturbed[:, j] - theta[j], stats.gumbel_r.cdf).pvalue for j in range(6)]
    assert min(p_values) > 1e-4, p_values


def test_gumbel_rao_has_the_expectation_of_gumbel_softmax_and_less_variance(backend, report):
    """Rao-Blackwellisation keeps the expectation and lowers the variance: at τ = 0.5 on a quadratic
    f(D) = (⟨D, w⟩ − 0.5)², K = 6, the mean gradients of GumbelSoftmax and GumbelRao(M = 10) agree
    within 4.4 standard errors per coordinate (false alarm < 1e-4 over the 6) and GumbelRao's total
    variance is below 0.8 of GumbelSoftmax's (measured 0.59 in NumPyro, 0.60 in PyTorch; each
    variance is estimated to a few per cent from 40 000 draws, so 0.8 is far beyond the noise; the
    variance that the sample D itself carries is not removed by conditioning on it); both against
    the exact gradient of E[f(D)] by enumeration (reported)."""
    K, draws = 6, 40_000
    rng = np.random.default_rng(22)
    logits, weights = rng.normal(size=K), rng.normal(size=K)
    values = (np.eye(K) @ weights - 0.5) ** 2
    probs = softmax(logits)
    exact = probs * (values - probs @ values)
    batch, host_weights, keys = backend.array(np.tile(logits, (draws, 1))), backend.array(weights), backend.rng(22)
    per_draw = {}
    for name, estimator in [
        ("GumbelSoftmax", backend.lib.GumbelSoftmax(temperature=0.5)),
        ("GumbelRao", backend.lib.GumbelRao(temperature=0.5, num_draws=10)),
    ]:
        noise = backend.sample_noise(estimator, batch, keys.next())

        def loss(x, estimator=estimator, noise=noise):
            return ((estimator.apply(x, *noise) @ host_weights - 0.5) ** 2).sum()

        (per_draw[name],) = backend.grad(loss, batch)
    gs, gr = per_draw["GumbelSoftmax"], per_draw["GumbelRao"]
    z = (gs.mean(0) - gr.mean(0)) / np.sqrt((gs.var(0) + gr.var(0)) / draws)
    assert np.abs(z).max() < 4.4
    ratio = gr.var(0).sum() / gs.var(0).sum()
    report(
        f"{backend.name:7s} GumbelRao(τ 0.5, M 10) vs GumbelSoftmax(τ 0.5), quadratic f, K = 6: variance ratio "
        f"{ratio:.3f}; |bias| {np.linalg.norm(gr.mean(0) - exact):.4f} vs {np.linalg.norm(gs.mean(0) - exact):.4f}"
    )
    assert ratio < 0.8


# -- ExactReDGE: exact hard samples, ReDGE's gradient given the sample -------------------------


def redge_chain_probs(backend, estimator, logits, gaussian):
    """The last denoiser estimates :math:`p_r` of ``estimator``'s chains for ``gaussian`` (NumPy),
    from the host's own ReDGE chain (which matches the reference package, above)."""
    chain = backend.lib.estimators.redge.denoising_chain
    schedule = ddim_schedule(estimator.num_steps, estimator.t1)
    return backend.numpy(chain(logits, backend.array(gaussian, None), schedule, estimator.variant)[-1])


@pytest.mark.parametrize("estimator_id", list(cases.EXACT_REDGE))
def test_exact_redge_draws_exactly_and_its_gradient_is_the_weighted_redge_gradient(backend, estimator_id):
    """Per draw, for each variant: the hard sample is the inverse-CDF draw of Cat(softmax θ) with
    the estimator's uniform, whatever the chains; the gradient is Σ_r w_r ĝ_r(D) with
    w_r = p_r(D) / Σ_s p_s(D), where ĝ_r(D) is ReDGE's own backward pass for chain r's noise and
    the hard sample D (ReDGE fed that noise and the uniform that makes it draw D). A masked category
    is never drawn and gets exactly zero gradient; batch shape (4, 3)."""
    rng = np.random.default_rng(24)
    estimator = make(backend, estimator_id, cases.EXACT_REDGE)
    shape, chains = (4, 3, 6), estimator.num_chains
    logits = 1.5 * rng.normal(size=shape)
    logits[1, :, 2] = -np.inf
    cotangent = rng.normal(size=shape)
    uniform, gaussian = rng.uniform(size=shape[:-1] + (1,)), rng.normal(size=(chains,) + shape)
    noise = backend.array(uniform), backend.array(gaussian)
    sample, grad = sample_and_vjp(backend, estimator, backend.array(logits), cotangent, *noise, compiled=True)
    sample = backend.numpy(sample)
    assert np.all((sample == 0) | (sample == 1)) and np.all(sample.sum(-1) == 1)
    index = sample.argmax(-1)[..., None]
    cdf = softmax(logits, -1).cumsum(-1)
    assert np.array_equal(index, (cdf <= uniform * cdf[..., -1:]).sum(-1, keepdims=True))
    assert np.all(index[1] != 2)

    redge = backend.lib.ReDGE(num_steps=estimator.num_steps, t1=estimator.t1, variant=estimator.variant)
    stacked = np.tile(logits, (chains, 1, 1, 1))
    chain_probs = redge_chain_probs(backend, estimator, backend.array(stacked), noise[1])
    chain_index = np.broadcast_to(index, (chains,) + shape[:-1] + (1,))
    likelihoods = np.take_along_axis(chain_probs, chain_index, -1)
    weights = likelihoods / likelihoods.sum(0)
    chain_uniform = backend.array(uniform_selecting(chain_probs, chain_index))
    chain_sample, chain_grads = sample_and_vjp(
        backend, redge, backend.array(stacked), weights * cotangent, noise[1], chain_uniform, compiled=True
    )
    assert np.array_equal(backend.numpy(chain_sample), np.broadcast_to(sample, (chains,) + shape))
    np.testing.assert_allclose(grad, chain_grads.sum(0), rtol=1e-10, atol=1e-13)
    assert np.all(grad[1, :, 2] == 0) and np.any(grad != 0)
    with pytest.raises(ValueError, match="gaussian must have shape"):
        estimator.apply(backend.array(logits), noise[0], noise[1][:1])


def test_exact_redge_in_float32_and_at_the_batch_edges(backend):
    """ExactReDGE's share of the edge tests (kept out of cases.EDGE_CLASS_CASES, whose uncompiled
    JAX runs would cost seconds per case; each case here is one compiled program): float32 logits
    give float32 one-hot samples and finite gradients, a row with a NaN logit is NaN in the sample
    and leaves the others alone, and empty and 0-dimensional batches work (4 chains of 3 steps: the
    shapes and dtypes do not depend on them, JAX's compile time does)."""
    estimator = backend.lib.ExactReDGE(num_steps=3, num_chains=4)
    rng = np.random.default_rng(25)
    logits = 2 * rng.normal(size=(3, 6))
    logits[1, 4] = np.nan
    for case, dtype in [(logits, "float32"), (np.zeros((0, 6)), "float64"), (np.linspace(-1, 1, 6), "float64")]:
        shape = case.shape
        noise = (
            backend.array(rng.uniform(size=shape[:-1] + (1,)), dtype),
            backend.array(rng.normal(size=(estimator.num_chains,) + shape), dtype),
        )
        sample, grad = sample_and_vjp(
            backend, estimator, backend.array(case, dtype), np.ones(shape), *noise, compiled=True
        )
        assert backend.dtype_name(sample) == dtype and tuple(sample.shape) == shape and grad.shape == shape
        sample, valid = backend.numpy(sample), ~np.isnan(case).any(-1)
        assert np.all(np.isnan(sample[~valid]))
        assert np.all((sample[valid] == 0) | (sample[valid] == 1)) and np.all(sample[valid].sum(-1) == 1)
        assert str(grad.dtype) == dtype and np.all(np.isfinite(grad[valid]))


def test_exact_redge_keeps_redge_mean_gradient_within_its_stated_bias_with_less_variance(backend, report):
    """ExactReDGE (default chain, R = 16 chains) against ReDGE and the exact gradient ∇ of E[f(D)]
    by enumeration, K = 6, f(D) = (⟨D, w⟩ − 0.5)²: the claims of its docstring.

    - Mean: its relative bias ‖E ĝ − ∇‖ / ‖∇‖ is at most ``cases.EXACT_REDGE_BIAS_EXCESS`` = 0.02 above
      ReDGE's. Both means are estimated with low variance: ExactReDGE's stratified over D (the same
      number of draws given each category, the uniform chosen to draw it, weighted by π); ReDGE's
      with D summed out given its chain noise ε (its ``mean`` backward pass is the chain's Jacobian
      applied to g(D), so its mean given ε is that Jacobian applied to Σ_k p_ε(k) g(e_k)). An
      estimated mean is within 3.9 √tr Cov of its expectation with probability ≥ 1 − 1e-4 (a
      Gaussian quadratic form's tail is at most χ²₁'s beyond 1.54, Székely and Bakirov 2003), so
      the bound 0.02 + 3.9 (s_X + s_R) / ‖∇‖ fails a correct implementation with probability
      ≤ 2e-4 (measured: 0.234 against ReDGE's 0.228, each ± 0.003). Chains independent of D
      without the weights measured 0.309 here, beyond the bound.
    - Variance of one draw: ExactReDGE's is below ReDGE's by more than 3.72 standard errors of the
      difference (one-sided level 1e-4; measured ratio 0.64, standard errors ≈ 1 %)."""
    K, chains, per_category, redge_draws, draws = 6, 16, 2000, 100_000, 20_000
    rng = np.random.default_rng(9)  # the problem of test_gradient_quality_against_enumeration
    logits, weights = rng.normal(size=K), rng.normal(size=K)
    probs, values = softmax(logits), (weights - 0.5) ** 2
    exact = probs * (values - probs @ values)
    norm = np.linalg.norm(exact)
    cotangents = 2 * (weights - 0.5)[:, None] * weights  # g(e_k) = ∂f/∂D at D = e_k, one row per k
    exact_redge, redge = backend.lib.ExactReDGE(num_chains=chains), backend.lib.ReDGE()

    index = np.repeat(np.arange(K), per_category)[:, None]
    rows = np.tile(logits, (K * per_category, 1))
    noise = (
        backend.array(uniform_selecting(softmax(rows, -1), index)),
        backend.array(rng.normal(size=(chains,) + rows.shape)),
    )
    sample, per_draw = sample_and_vjp(
        backend, exact_redge, backend.array(rows), cotangents[index[:, 0]], *noise, compiled=True
    )
    assert np.array_equal(backend.numpy(sample).argmax(-1), index[:, 0])
    per_draw = per_draw.reshape(K, per_category, K)
    mean_x = probs @ per_draw.mean(1)
    error_x = np.sqrt(probs**2 @ per_draw.var(1).sum(-1) / per_category)

    rows = np.tile(logits, (redge_draws, 1))
    gaussian = backend.array(rng.normal(size=rows.shape))
    chain_probs = redge_chain_probs(backend, redge, backend.array(rows), gaussian)
    uniform = backend.array(rng.uniform(size=(redge_draws, 1)))
    _, summed = sample_and_vjp(
        backend, redge, backend.array(rows), chain_probs @ cotangents, gaussian, uniform, compiled=True
    )
    mean_r, error_r = summed.mean(0), np.sqrt(summed.var(0).sum() / redge_draws)

    bias_x, bias_r = np.linalg.norm(mean_x - exact) / norm, np.linalg.norm(mean_r - exact) / norm
    allowed = cases.EXACT_REDGE_BIAS_EXCESS + 3.9 * (error_x + error_r) / norm

    # The variance of one draw: ExactReDGE's from the stratified draws, Σ_k π_k E[‖ĝ − E ĝ‖² | D = k];
    # ReDGE's from plain draws.
    squares = ((per_draw - mean_x) ** 2).sum(-1)
    var_x, se_x = probs @ squares.mean(1), np.sqrt(probs**2 @ squares.var(1) / per_category)
    host_weights = backend.array(weights)

    def loss(x, gaussian, uniform):
        return ((redge.apply(x, gaussian, uniform) @ host_weights - 0.5) ** 2).sum()

    noise = backend.array(rng.normal(size=(draws, K))), backend.array(rng.uniform(size=(draws, 1)))
    grads = backend.numpy(backend.jit(backend.gradient(loss))(backend.array(np.tile(logits, (draws, 1))), *noise))
    squares = ((grads - grads.mean(0)) ** 2).sum(-1)
    var_r, se_r = squares.mean(), squares.std() / draws**0.5
    report(
        f"{backend.name:7s} ExactReDGE(R 16) vs ReDGE, quadratic f, K = 6: relative bias {bias_x:.4f} "
        f"± {error_x / norm:.4f} vs {bias_r:.4f} ± {error_r / norm:.4f} (allowed {bias_r + allowed:.4f}); "
        f"variance ratio {var_x / var_r:.3f}"
    )
    assert bias_x <= bias_r + allowed
    assert var_x + 3.72 * np.hypot(se_x, se_r) < var_r


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reinmax_equals_the_reference_and_its_closed_form(backend, temperature):
    torch = pytest.importorskip("torch")
    reinmax = pytest.importorskip("reinmax")
    rng = np.random.default_rng(5)
    logits, cotangent = rng.normal(size=(64, 6)), rng.normal(size=(64, 6))
    torch.manual_seed(5)
    reference_logits = torch.tensor(logits).requires_grad_()
    reference_sample, _ = reinmax.reinmax(reference_logits, temperature)
    (theirs,) = torch.autograd.grad((reference_sample * torch.tensor(cotangent)).sum(), reference_logits)
    reference_sample = reference_sample.detach().numpy()

    uniform = backend.array(uniform_selecting(softmax(logits, -1), reference_sample.argmax(-1)[:, None]))
    estimator = backend.lib.ReinMax(temperature)
    sample, ours = sample_and_vjp(backend, estimator, backend.array(logits), cotangent, uniform)
    sample = backend.numpy(sample)
    assert np.array_equal(sample, reference_sample)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-14)
    closed = reinmax_closed_form(logits, sample, cotangent, temperature)
    np.testing.assert_allclose(ours, closed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reinmax_matches_its_closed_form_per_draw_and_enumeration_on_average(backend, temperature):
    K, draws = 5, 100_000
    rng = np.random.default_rng(6)
    logits, cotangent = rng.normal(size=K), rng.normal(size=K)
    per_category = reinmax_closed_form(logits, np.eye(K), cotangent, temperature)
    exact_mean = softmax(logits) @ per_category
    if temperature == 1.0:
        # At τ = 1, E_D[2 J(π½) − ½ J(π)] = J(π): unbiased for linear functions.
        np.testing.assert_allclose(exact_mean, softmax_vjp(softmax(logits), cotangent), rtol=1e-12, atol=1e-14)
    estimator = backend.lib.ReinMax(temperature)
    batch = backend.array(np.tile(logits, (draws, 1)))
    noise = backend.sample_noise(estimator, batch, backend.rng(6).next())
    sample, per_draw = sample_and_vjp(backend, estimator, batch, cotangent, *noise)
    sample = backend.numpy(sample)
    closed = reinmax_closed_form(np.broadcast_to(logits, (draws, K)), sample, cotangent, temperature)
    np.testing.assert_allclose(per_draw, closed, rtol=1e-10, atol=1e-13)
    mean, std = per_draw.mean(0), per_draw.std(0)
    # |z| < 4.4 per coordinate: two-sided false alarm 1e-5 each, 5e-5 over the K coordinates.
    z = (mean - exact_mean) / (std / draws**0.5 + 1e-300)
    assert np.abs(z).max() < 4.4


# ST and ReinMax (τ = 1) are unbiased for functions linear in the one-hot sample; ReinMax, a
# trapezoidal (Heun) rule, is also exact for quadratic ones.
UNBIASED = {("linear", "straight_through"), ("linear", "reinmax"), ("quadratic", "reinmax")}


def test_gradient_quality_against_enumeration(backend, report):
    """Mean surrogate gradient of each estimator vs the exact gradient of E[f(D)], by enumeration,
    for a linear and a nonlinear f; ST and ReinMax (τ = 1) must be unbiased where they are."""
    K, draws = 6, 50_000
    rng = np.random.default_rng(9)
    logits, weights = rng.normal(size=K), rng.normal(size=K)
    functions = {"linear": lambda d, w: d @ w, "quadratic": lambda d, w: (d @ w - 0.5) ** 2}
    probs = softmax(logits)
    batch = backend.array(np.tile(logits, (draws, 1)))
    host_weights = backend.array(weights)
    keys = backend.rng(9)
    for fname, f in functions.items():
        values = f(np.eye(K), weights)
        exact = probs * (values - probs @ values)  # ∇θ Σ_k softmax(θ)_k f(e_k)
        for estimator_id in cases.ESTIMATORS:
            estimator = make(backend, estimator_id)
            noise = backend.sample_noise(estimator, batch, keys.next())

            def loss(x, f=f, estimator=estimator, noise=noise):
                return f(estimator.apply(x, *noise), host_weights).sum()

            (per_draw,) = backend.grad(loss, batch)
            mean = per_draw.mean(0)
            bias = float(np.linalg.norm(mean - exact))
            cosine = float(mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact)))
            variance = float(per_draw.var(0).sum())
            report(
                f"{backend.name:7s} {estimator_id:16s} {fname:9s}: |bias| {bias:.4f} (|∇| "
                f"{np.linalg.norm(exact):.4f}), cosine {cosine:.4f}, total variance {variance:.4f}"
            )
            if (fname, estimator_id) in UNBIASED:
                # 5 standard errors of the norm of the Monte-Carlo mean (false alarm < 1e-4), plus
                # rounding: ST's surrogate does not depend on the draw, so its variance is zero.
                assert bias < 5 * (variance / draws) ** 0.5 + 1e-12


# -- values: dtypes, shapes, extreme and masked logits -----------------------------------------


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_are_bitwise_one_hot_in_every_dtype(backend, estimator_id, dtype):
    rng = np.random.default_rng(7)
    logits = backend.array(3 * rng.normal(size=(500, 9)), dtype)
    estimator = make(backend, estimator_id)
    noise = backend.sample_noise(estimator, logits, backend.rng(7).next())
    cotangent = backend.array(rng.normal(size=(500, 9)), dtype)
    sample, grad = sample_and_vjp(backend, estimator, logits, cotangent, *noise)
    assert backend.dtype_name(sample) == dtype and tuple(sample.shape) == (500, 9)
    values = backend.numpy(sample)
    assert np.all((values == 0) | (values == 1)) and np.all(values.sum(-1) == 1)
    assert str(grad.dtype) == ("float32" if dtype == "bfloat16" else dtype) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_extreme_and_masked_logits(backend, estimator_id):
    logits = backend.array(np.tile([1e4, -1e4, 0.0, -np.inf, 3.0, -np.inf], (4000, 1)))
    estimator = make(backend, estimator_id)
    noise = backend.sample_noise(estimator, logits, backend.rng(8).next())
    cotangent = np.random.default_rng(8).normal(size=(4000, 6))
    sample, grad = sample_and_vjp(backend, estimator, logits, cotangent, *noise)
    sample = backend.numpy(sample)
    assert np.all((sample == 0) | (sample == 1)) and np.all(sample.sum(-1) == 1)
    assert sample[:, [3, 5]].sum() == 0, "a masked category was sampled"
    if estimator_id in cases.EXACT_LAW:
        assert np.all(sample[:, 0] == 1)
    assert np.all(np.isfinite(grad))


def test_one_hot_for_any_shape(backend):
    # Every new shape compiles in JAX (once per example when the call is compiled whole, once per
    # operation otherwise): fewer examples there keep the run short.
    @settings(max_examples=40 if backend.name == "pyro" else 6, deadline=None, derandomize=True)
    @given(
        batch_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
        num_categories=st.integers(1, 12),
        estimator_id=st.sampled_from(list(cases.ESTIMATORS)),
        scale=st.sampled_from([0.1, 1.0, 30.0]),
        seed=st.integers(0, 2**16),
    )
    def check(batch_shape, num_categories, estimator_id, scale, seed):
        shape = tuple(batch_shape) + (num_categories,)
        logits = backend.array(scale * np.random.default_rng(seed).normal(size=shape))
        estimator = make(backend, estimator_id)
        sample = backend.numpy(
            backend.jit(lambda x, key: backend.call(estimator, x, key))(logits, backend.rng(seed).next())
        )
        assert sample.shape == shape
        assert np.all((sample == 0) | (sample == 1)) and np.all(sample.sum(-1) == 1)

    check()


# -- AIMLE's state: outside the estimator, advanced outside the backward pass ------------------


def aimle_gradients(backend, estimator, logits, noise, cotangent, beta, k):
    """The surrogate gradient of ``⟨apply(logits, noise), cotangent⟩`` w.r.t. the logits, and the
    gradient density the backward pass reports as the gradient (cotangent) of ``beta``."""
    cotangent = backend.array(cotangent, None)
    grad, density = backend.grad(
        lambda x, b: (estimator.apply(x, *noise, k=k, beta=b) * cotangent).sum(), logits, backend.array(beta)
    )
    return grad, float(density)


def test_aimle_update_state_matches_its_closed_form(backend):
    estimator = backend.lib.AIMLE(target_density=2.0, step=0.25, decay=0.75)
    state = estimator.init_state()
    assert float(state.beta) == 1.0 and float(state.density) == 2.0
    # One step: ρ̄' = γ ρ̄ + (1 − γ) ρ; β' = β + s if ρ̄' < ρ*, else max(β − s, 0).
    below = estimator.update_state(state, 1.0)
    assert (float(below.density), float(below.beta)) == (0.75 * 2.0 + 0.25 * 1.0, 1.25)
    above = estimator.update_state(state, 3.0)
    assert (float(above.density), float(above.beta)) == (0.75 * 2.0 + 0.25 * 3.0, 0.75)
    assert (float(state.beta), float(state.density)) == (1.0, 2.0), "update_state changed its input"
    # Many steps at a constant observed density ρ: ρ̄_t = ρ + (ρ̄_0 − ρ) γ^t, and β falls by s per
    # step while ρ̄ stays above the target, clamped at 0.
    for observed in (3.0, 0.5):
        current, densities, betas = state, [], []
        for _ in range(12):
            current = estimator.update_state(current, observed)
            densities.append(float(current.density))
            betas.append(float(current.beta))
        t = np.arange(1, 13)
        np.testing.assert_allclose(densities, observed + (2.0 - observed) * 0.75**t, rtol=1e-6)
        expected_betas = np.maximum(1.0 - 0.25 * t, 0.0) if observed > 2.0 else 1.0 + 0.25 * t
        np.testing.assert_allclose(betas, expected_betas, rtol=1e-6, atol=0)


@pytest.mark.parametrize("samples", [1, 3])
def test_aimle_reports_the_mean_gradient_density_per_sample(backend, samples):
    """The gradient of ``beta`` is the number of nonzero gradient entries per sample (a mean, so
    that it can be averaged across processes), and an extra backward pass changes nothing: the
    estimator holds no state, and the same noise gives the same gradients."""
    estimator = backend.lib.AIMLE(samples=samples, initial_beta=0.5)
    assert "state" not in {field.name for field in dataclasses.fields(estimator)}
    rng = np.random.default_rng(10)
    logits = backend.array(rng.normal(size=(16, 9)))
    cotangent = rng.normal(size=((samples,) if samples > 1 else ()) + (16, 9))
    noise = backend.sample_noise(estimator, logits, backend.rng(10).next(), k=3)
    first, density = aimle_gradients(backend, estimator, logits, noise, cotangent, 0.5, 3)
    # The central difference of top-3 MAPs at λ = β‖θ‖/‖g‖ (norms over the whole call), same noise.
    theta = backend.numpy(logits)
    epsilon = backend.numpy(noise[0]).reshape(-1, 16, 9)
    g = cotangent.reshape(-1, 16, 9)
    lam = 0.5 * np.linalg.norm(theta) / np.linalg.norm(g)

    def top3(x):
        return (np.argsort(-x, -1)[..., :3, None] == np.arange(9)).any(-2).astype(float)

    difference = top3(theta + lam * g + epsilon) - top3(theta - lam * g + epsilon)
    assert density == np.count_nonzero(difference) / (samples * 16)
    again, density_again = aimle_gradients(backend, estimator, logits, noise, cotangent, 0.5, 3)
    assert density_again == density and np.array_equal(again, first)
    assert estimator == backend.lib.AIMLE(samples=samples, initial_beta=0.5)


# -- edges (issue 13): masks, non-finite logits, empty batches, hyperparameter types ------------


def make_edge(backend, estimator_id):
    name, kwargs, _ = cases.EDGE_ESTIMATORS[estimator_id]
    return getattr(backend.lib, name)(**kwargs)


@pytest.mark.parametrize("estimator_id, k", cases.EDGE_CLASS_CASES + [("reinmax_t2", 1)])
def test_masked_classes_are_never_drawn_and_get_exactly_zero_gradient(backend, estimator_id, k):
    rng = np.random.default_rng(13)
    logits = 2 * rng.normal(size=(16, 5))
    masked = [1, 3]
    logits[:, masked] = -np.inf
    cotangent = rng.normal(size=logits.shape)
    estimator = make_edge(backend, estimator_id)
    noise = backend.sample_noise(estimator, backend.array(logits), backend.rng(13).next(), k=k)
    sample, grad = sample_and_vjp(backend, estimator, backend.array(logits), cotangent, *noise, k=k)
    sample = backend.numpy(sample)
    assert np.all(sample[..., masked] == 0) and np.all(sample.sum(-1) == k)
    assert np.all(np.isfinite(grad))
    # Exactly zero: ReinMax's centring used to leak ~1e-8 onto masked classes.
    assert np.all(grad[:, masked] == 0)
    # AIMLE's step used ‖θ‖ = ∞ and returned an all-zero gradient whenever a logit was masked.
    assert np.any(grad != 0)


@pytest.mark.parametrize("estimator_id, k", [("aimle", 1), ("aimle", 2), ("aimle_one_sided", 2)])
def test_aimle_with_masked_classes_equals_aimle_on_the_unmasked_classes(backend, estimator_id, k):
    # The step's norm runs over the finite logits: masking classes is dropping them, exactly.
    rng = np.random.default_rng(14)
    logits = 2 * rng.normal(size=(16, 5))
    masked, kept = [1, 3], [0, 2, 4]
    logits[:, masked] = -np.inf
    cotangent = rng.normal(size=logits.shape)
    cotangent[:, masked] = 0.0  # so that ‖g‖, the other norm of the step, is also that of the kept classes
    estimator = make_edge(backend, estimator_id)
    (noise,) = backend.sample_noise(estimator, backend.array(logits), backend.rng(14).next(), k=k)
    noise = backend.numpy(noise)
    with_mask = vjp(backend, estimator, backend.array(logits), cotangent, backend.array(noise), k=k)
    dropped = vjp(
        backend, estimator, backend.array(logits[:, kept]), cotangent[:, kept], backend.array(noise[:, kept]), k=k
    )
    # Equal up to the order in which XLA sums the norm with the masked zeros in (≈1e-16 relative).
    np.testing.assert_allclose(with_mask[:, kept], dropped, rtol=1e-12, atol=0)


@pytest.mark.parametrize("estimator_id, k", cases.EDGE_CLASS_CASES)
def test_nan_or_plus_inf_logits_never_become_a_sample(backend, estimator_id, k):
    estimator = make_edge(backend, estimator_id)
    key = backend.rng(15).next()
    for bad in (np.nan, np.inf):
        row = np.array([0.0, bad, 1.0, -0.5, 0.2])
        # The functional form checks concrete logits.
        for logits in (row, np.stack([np.zeros(5), row])):
            with pytest.raises(ValueError, match="logits"):
                backend.call(estimator, backend.array(logits), key, k=k)
        # apply (the hot path, compiled where the host compiles: NumPyro's jit) propagates NaN to the
        # invalid rows only.
        logits = np.stack([np.array([0.3, -1.0, 1.0, -0.5, 0.2]), row])
        noise = backend.sample_noise(estimator, backend.array(logits), key, k=k)
        sample = backend.numpy(
            backend.jit(lambda x, *noise: estimator.apply(x, *noise, k=k))(backend.array(logits), *noise)
        )
        assert np.all(np.isnan(sample[..., 1, :])), bad
        assert np.all((sample[..., 0, :] == 0) | (sample[..., 0, :] == 1)) and np.all(sample[..., 0, :].sum(-1) == k)


@pytest.mark.parametrize("shape", cases.EDGE_SHAPES, ids=str)
@pytest.mark.parametrize("estimator_id, k", cases.EDGE_CLASS_CASES)
def test_empty_and_zero_dimensional_batches(backend, estimator_id, k, shape):
    estimator = make_edge(backend, estimator_id)
    key = backend.rng(16).next()
    logits = backend.array(np.linspace(-1, 1, int(np.prod(shape))).reshape(shape))
    leading = (estimator.samples,) if getattr(estimator, "samples", 1) > 1 else ()
    assert backend.numpy(backend.call(estimator, logits, key, k=k)).shape == leading + shape
    noise = backend.sample_noise(estimator, logits, key, k=k)
    cotangent = np.ones(leading + shape)
    sample, grad = sample_and_vjp(backend, estimator, logits, cotangent, *noise, k=k)
    assert backend.numpy(sample).shape == leading + shape and grad.shape == shape
    assert np.all(np.isfinite(grad))


def test_aimle_leaves_all_zero_logits(backend):
    # λ = β‖θ‖/‖g‖ is 0 at θ = 0 in the reference: the floor max(‖θ‖, 1) gives a nonzero step.
    estimator = backend.lib.AIMLE()
    target = backend.array(np.tile(cases.SUBSET_OPT_TARGET, (8, 1)))
    for k in (1, cases.SUBSET_OPT_K):

        def loss(x, key, k=k):
            return ((backend.call(estimator, x, key, k=k) - target) ** 2).sum()

        final = backend.adam(loss, backend.array(np.zeros((8, 10))), steps=20, learning_rate=0.1, seed=17)
        assert np.all(np.isfinite(final)) and np.abs(final).max() > 0.05, k
    with pytest.raises(ValueError, match="initial_beta"):
        backend.lib.AIMLE(initial_beta=float("inf"))


def test_hyperparameters_and_logits_at_their_edges(backend):
    lib = backend.lib
    # NumPy scalars are accepted (as every other estimator's) and stored as Python scalars.
    redge = lib.ReDGE(num_steps=np.int64(5), t1=np.float64(0.5))
    assert redge == lib.ReDGE() and hash(redge) == hash(lib.ReDGE()) and type(redge.num_steps) is int
    assert lib.ReinMax(temperature=np.float32(2.0)) == lib.ReinMax(temperature=2.0)
    assert lib.AIMLE(samples=np.int64(2), symmetric=np.bool_(True)) == lib.AIMLE(samples=2)
    with pytest.raises(ValueError, match="temperature must be a Python or NumPy real number, got a tensor"):
        lib.ReinMax(temperature=backend.array(2.0))
    # Categories are on the last axis: a 0-d logits array names logits.
    key = backend.rng(18).next()
    for estimator_id in cases.EDGE_ESTIMATORS:
        estimator = make_edge(backend, estimator_id)
        with pytest.raises(ValueError, match="logits"):
            backend.call(estimator, backend.array(1.0), key)
        with pytest.raises(ValueError, match="logits"):
            backend.sample_noise(estimator, backend.array(1.0), key)


def test_the_default_estimator_is_reinmax_everywhere_in_both_hosts(backend):
    """One default, defined once (redge_core.estimator_options.DEFAULT_ESTIMATOR), chosen by the
    gradient-quality measurements above (docs/choosing_an_estimator.md); KSubset keeps its exact sampler."""
    import inspect

    from redge_core.estimator_options import DEFAULT_ESTIMATOR

    lib = backend.lib
    assert DEFAULT_ESTIMATOR == ("ReinMax", {})
    assert lib.estimators.DEFAULT_ESTIMATOR == lib.ReinMax()
    logits = backend.array(np.zeros(3))
    for distribution in [
        lib.OneHotCategorical(logits=logits),
        lib.Bernoulli(logits=logits),
        lib.Poisson(backend.array(2.0)),
        lib.Binomial(10.0, logits=logits),
        lib.Geometric(logits=logits),
        lib.NegativeBinomial(3.0, logits=logits),
    ]:
        assert distribution.estimator == lib.ReinMax(), type(distribution).__name__
    for function in (lib.relax, lib.RelaxReparam, lib.AutoRelaxed, lib.ReparameterizedDiscrete):
        assert inspect.signature(function).parameters["estimator"].default == lib.ReinMax(), function
    assert lib.KSubset(logits, 2).estimator == lib.MarginalStraightThrough()
