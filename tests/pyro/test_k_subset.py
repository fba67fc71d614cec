import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence

import pyro_redge
from pyro_redge._math import log_elementary_symmetric
from tests import cases


def make_subset_estimator(estimator_id):
    name, kwargs = cases.SUBSET_ESTIMATORS[estimator_id]
    return getattr(pyro_redge, name)(**kwargs)


@pytest.mark.parametrize("n, k", [(1, 1), (5, 1), (6, 2), (8, 4), (12, 4), (12, 12)])
def test_log_prob_sums_to_one_over_all_subsets(n, k, device):
    torch.manual_seed(0)
    d = pyro_redge.KSubset(3 * torch.randn(2, n, dtype=torch.float64, device=device), k)
    support = d.enumerate_support()
    assert support.shape == (math.comb(n, k), 2, n)
    torch.testing.assert_close(d.log_prob(support).exp().sum(0), torch.ones(2, dtype=torch.float64, device=device))
    torch.testing.assert_close(d.marginals, (d.log_prob(support).exp()[..., None] * support).sum(0))
    torch.testing.assert_close(d.marginals.sum(-1), torch.full((2,), float(k), dtype=torch.float64, device=device))


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_log_normalizer_at_scale_against_a_float64_reference(scale, device):
    """n = 2 000, k = 200, including logits of ±1e3: float32 within 1e-6 relative, float64 1e-12."""
    rng = np.random.default_rng(1)
    logits = scale * rng.uniform(-1, 1, size=(2, 2000))
    logits[:, :5] = [1e3, -1e3, 1e3, -1e3, 0.0]
    reference = cases.reference_log_elementary_symmetric(logits, 200)
    ours64 = log_elementary_symmetric(torch.tensor(logits, device=device), 200).cpu().numpy()
    ours32 = log_elementary_symmetric(torch.tensor(logits, dtype=torch.float32, device=device), 200).cpu().numpy()
    np.testing.assert_allclose(ours64, reference, rtol=1e-12)
    np.testing.assert_allclose(ours32, reference, rtol=1e-6)
    marginals = pyro_redge.KSubset(torch.tensor(logits, device=device), 200).marginals
    # Reverse mode through 2 000 recursion steps at logits of ±1e3: ~1e-11 relative rounding.
    torch.testing.assert_close(marginals.sum(-1), torch.full((2,), 200.0, dtype=torch.float64, device=device), rtol=1e-9, atol=0)
    # Probabilities, up to rounding: the marginals are exponentials of differences of entries of
    # size |log e_k| ≈ 2·10⁵ here, each good to 2·10⁵ × 1.1e-16 ≈ 2e-11; bound 1e-9.
    assert bool(((marginals >= -1e-9) & (marginals <= 1 + 1e-9)).all())


def test_exact_sampling_matches_the_pmf_and_perturb_and_map_deviation_is_measured(report, device):
    logits = torch.tensor(cases.SUBSET_LAW_LOGITS, device=device)
    d = pyro_redge.KSubset(logits, cases.SUBSET_LAW_K, estimator=pyro_redge.MarginalStraightThrough())
    subsets = list(itertools.combinations(range(len(logits)), cases.SUBSET_LAW_K))
    pmf = np.array([math.exp(float(logits[list(s)].sum() - d.log_normalizer)) for s in subsets])

    def frequencies(samples):
        counts = dict.fromkeys(subsets, 0)
        for s in cases.subset_index(samples.cpu()):
            counts[s] += 1
        return np.array([counts[s] for s in subsets], float)

    torch.manual_seed(2)
    for label, samples in [("sample_exact", d.sample_exact((cases.SUBSET_DRAWS,))), ("MarginalStraightThrough", d.rsample((cases.SUBSET_DRAWS,)))]:
        counts = frequencies(samples)
        assert stats.chisquare(counts, pmf * counts.sum()).pvalue > cases.FALSE_ALARM, label
    for estimator_id in ("imle", "imle_sum_of_gamma", "aimle"):
        counts = frequencies(pyro_redge.KSubset(logits, cases.SUBSET_LAW_K, make_subset_estimator(estimator_id)).sample((cases.SUBSET_DRAWS,)))
        report(
            f"torch KSubset(n=6, k=2) {estimator_id:18s}: TV(perturb-and-MAP law, exact pmf) = "
            f"{cases.total_variation(counts / counts.sum(), pmf):.4f} (Monte-Carlo floor ≈ 0.005)"
        )


def test_kl_between_k_subsets_is_exact(device):
    torch.manual_seed(3)
    p = pyro_redge.KSubset(torch.randn(3, 7, dtype=torch.float64, device=device), 3)
    q = pyro_redge.KSubset(torch.randn(3, 7, dtype=torch.float64, device=device), 3)
    support = p.enumerate_support()
    expected = (p.log_prob(support).exp() * (p.log_prob(support) - q.log_prob(support))).sum(0)
    torch.testing.assert_close(kl_divergence(p, q), expected)
    torch.testing.assert_close(kl_divergence(p, p), torch.zeros(3, dtype=torch.float64, device=device))
    torch.testing.assert_close(p.entropy(), -(p.log_prob(support).exp() * p.log_prob(support)).sum(0))


def _exact_expected_loss_gradient(logits):
    """∇θ E_p[‖z − target‖²] by enumeration of the 120 subsets."""
    target = torch.tensor(cases.SUBSET_OPT_TARGET, dtype=logits.dtype, device=logits.device)
    logits = logits.detach().requires_grad_()
    d = pyro_redge.KSubset(logits, cases.SUBSET_OPT_K, estimator=pyro_redge.MarginalStraightThrough())
    support = d.enumerate_support()
    expected_loss = (d.log_prob(support).exp() * ((support - target) ** 2).sum(-1)).sum()
    (gradient,) = torch.autograd.grad(expected_loss, logits)
    return gradient


@pytest.mark.parametrize("estimator_id", list(cases.SUBSET_ESTIMATORS))
def test_gradient_against_enumeration_and_optimisation_to_the_target(estimator_id, report, device):
    torch.manual_seed(4)
    target = torch.tensor(cases.SUBSET_OPT_TARGET, dtype=torch.float64, device=device)
    logits = 0.5 * torch.randn(10, dtype=torch.float64, device=device)
    exact = _exact_expected_loss_gradient(logits)
    draws = 20_000
    batch = logits.expand(draws, 10).clone().requires_grad_()
    z = pyro_redge.KSubset(batch, cases.SUBSET_OPT_K, make_subset_estimator(estimator_id)).rsample()
    (per_draw,) = torch.autograd.grad(((z - target) ** 2).sum(), batch)
    # IMLE and AIMLE average per draw; the gradient of the mean loss is their mean.
    mean = per_draw.mean(0)
    cosine = torch.nn.functional.cosine_similarity(mean, exact, dim=0).item()
    report(
        f"torch KSubset(n=10, k=3) {estimator_id:26s}: cosine(mean gradient, exact) {cosine:+.3f}, "
        f"|bias| {(mean / mean.norm() * exact.norm() - exact).norm().item():.3f} after scaling to |exact| {exact.norm().item():.3f}"
    )
    assert cosine > 0.5, "the mean surrogate gradient does not point the exact gradient's way"

    # Small random logits, not zeros: AIMLE's step λ = β‖θ‖/‖g‖ vanishes at θ = 0 (as in the
    # reference), so it cannot leave an all-zero start.
    parameters = (0.01 * torch.randn(10, dtype=torch.float64, device=device)).requires_grad_()
    estimator = make_subset_estimator(estimator_id)
    optimizer = torch.optim.Adam([parameters], lr=0.05)
    for _ in range(cases.SUBSET_OPT_STEPS):
        optimizer.zero_grad()
        z = pyro_redge.KSubset(parameters.expand(16, 10), cases.SUBSET_OPT_K, estimator).rsample()
        ((z - target) ** 2).sum(-1).mean().backward()
        optimizer.step()
    reached = torch.zeros(10, dtype=torch.float64, device=device).scatter_(0, parameters.topk(cases.SUBSET_OPT_K).indices, 1.0)
    assert torch.equal(reached, target), f"{estimator_id} ended at {reached.tolist()}"


@pytest.mark.parametrize("target_density, direction", [(0.5, -1), (6.0, +1)])
def test_aimle_beta_moves_the_density_towards_the_target(target_density, direction, device):
    """A scripted run: a fixed loss, repeated backward passes; β goes down when the gradient is
    denser than the target and up when sparser, and the running density approaches the target."""
    torch.manual_seed(5)
    estimator = pyro_redge.AIMLE(target_density=target_density, step=0.05, initial_beta=1.0)
    logits = torch.randn(32, 12, dtype=torch.float64, device=device, requires_grad=True)
    weights = torch.randn(32, 12, dtype=torch.float64, device=device)
    densities, betas = [], []
    for _ in range(150):
        z = estimator.sample_subset(logits, 4)
        torch.autograd.grad((z * weights).sum(), logits)
        densities.append(float(estimator.state.density))
        betas.append(float(estimator.state.beta))
    assert (betas[-1] - 1.0) * direction > 0
    assert abs(densities[-1] - target_density) < abs(densities[0] - target_density)


def test_imle_matches_its_definition(device):
    """One-sided IMLE: (MAP(θ + τε) − MAP(θ − λg + τε)) / λ with the same ε, averaged over samples."""
    torch.manual_seed(6)
    estimator = pyro_redge.IMLE(temperature=0.7, lam=3.0, samples=4)
    logits = torch.randn(5, 8, dtype=torch.float64, device=device, requires_grad=True)
    (noise,) = estimator.subset_noise(logits, 3)
    z = estimator.apply_subset(logits, 3, noise)
    assert z.shape == (4, 5, 8)
    cotangent = torch.randn(4, 5, 8, dtype=torch.float64, device=device)
    (grad,) = torch.autograd.grad((z * cotangent).sum(), logits)

    def top3(x):
        return torch.zeros_like(x).scatter_(-1, x.topk(3).indices, 1.0)

    expected = ((top3(logits.detach() + 0.7 * noise) - top3(logits.detach() - 3.0 * cotangent + 0.7 * noise)) / 3.0).mean(0)
    torch.testing.assert_close(grad, expected)


def test_categorical_distributions_accept_subset_estimators(device):
    torch.manual_seed(7)
    logits = torch.randn(4, 5, device=device, requires_grad=True)
    (uniform,) = pyro_redge.StraightThrough().sample_noise(logits)
    via_marginals = pyro_redge.MarginalStraightThrough().apply(logits, uniform)
    via_straight_through = pyro_redge.StraightThrough().apply(logits, uniform)
    assert torch.equal(via_marginals, via_straight_through)
    cotangent = torch.randn(4, 5, device=device)
    torch.testing.assert_close(
        torch.autograd.grad((via_marginals * cotangent).sum(), logits)[0],
        torch.autograd.grad((via_straight_through * cotangent).sum(), logits)[0],
    )
    # IMLE with Gumbel noise on a categorical is the Gumbel-max trick: an exact draw.
    law = torch.tensor(cases.LAW_LOGITS, device=device)
    samples = pyro_redge.OneHotCategorical(logits=law.expand(cases.LAW_DRAWS, 10), estimator=pyro_redge.IMLE()).sample()
    counts = samples.sum(0).cpu().double().numpy()
    probs = np.exp(cases.LAW_LOGITS) / np.exp(cases.LAW_LOGITS).sum()
    assert stats.chisquare(counts, probs * counts.sum()).pvalue > cases.FALSE_ALARM
    for estimator in (pyro_redge.AIMLE(), pyro_redge.IMLE(noise="sum_of_gamma")):
        for d in (pyro_redge.OneHotCategorical(logits=logits, estimator=estimator), pyro_redge.Bernoulli(logits=logits, estimator=estimator)):
            value = d.rsample()
            (grad,) = torch.autograd.grad((value * torch.randn_like(value)).sum(), logits)
            assert bool(torch.isfinite(grad).all())


def test_k_subset_bad_input(device):
    logits = torch.zeros(6, device=device)
    for build, argument in [
        (lambda: pyro_redge.KSubset(logits, 0), "k"),
        (lambda: pyro_redge.KSubset(logits, 7), "k"),
        (lambda: pyro_redge.KSubset(logits, 2.0), "k"),
        (lambda: pyro_redge.KSubset(logits, 2, estimator=pyro_redge.ReDGE()), "estimator"),
        (lambda: pyro_redge.KSubset(logits, 2, estimator=pyro_redge.IMLE(samples=3)), "estimator"),
        (lambda: pyro_redge.KSubset(logits, 2).log_prob(torch.tensor([1.0, 1, 1, 0, 0, 0])), "value"),
        (lambda: pyro_redge.KSubset(logits, 2).log_prob(torch.tensor([0.5, 1.5, 0, 0, 0, 0])), "value"),
        (lambda: pyro_redge.KSubset(torch.full((6,), float("nan")), 2), "logits"),
        (lambda: pyro_redge.IMLE(noise="uniform"), "noise"),
        (lambda: pyro_redge.IMLE(lam=0.0), "lam"),
        (lambda: pyro_redge.IMLE(lam=-1.0), "lam"),
        (lambda: pyro_redge.IMLE(samples=0), "samples"),
        (lambda: pyro_redge.IMLE(temperature=0.0), "temperature"),
        (lambda: pyro_redge.AIMLE(target_density=0.0), "target_density"),
        (lambda: pyro_redge.AIMLE(step=-1.0), "step"),
        (lambda: pyro_redge.AIMLE(initial_beta=-1.0), "initial_beta"),
        (lambda: pyro_redge.AIMLE(decay=1.0), "decay"),
        (lambda: pyro_redge.ReDGE().sample_subset(logits, 2), "k-subsets"),
        (lambda: pyro_redge.OneHotCategorical(logits=logits, estimator=pyro_redge.IMLE(samples=2)), "estimator"),
    ]:
        with pytest.raises(ValueError, match=argument):
            build()
