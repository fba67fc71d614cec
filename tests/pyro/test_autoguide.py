import pyro
import pyro.distributions as host
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO

import pyro_redge
from tests import cases


def mixture_model(data):
    """Written with Pyro's own distributions. Broadcasting-safe: under vectorised particles or
    Predictive, `means` carries a singleton at the data plate's dim, so `(z * means).sum(-1)` pairs
    each particle's means with its own assignments."""
    loc = torch.tensor(cases.MIXTURE_PRIOR_LOC, dtype=data.dtype, device=data.device)
    means = pyro.sample("means", host.Normal(loc, cases.MIXTURE_PRIOR_SCALE).to_event(1))
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", host.OneHotCategorical(probs=torch.tensor(cases.MIXTURE_WEIGHTS, dtype=data.dtype, device=data.device)))
        pyro.sample("x", host.Normal((z * means).sum(-1), cases.MIXTURE_SCALE), obs=data)


def test_auto_relaxed_fits_a_gaussian_mixture_to_the_exact_posterior(report, device):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    data = torch.tensor(cases.MIXTURE_DATA, dtype=torch.float64, device=device)
    model = pyro_redge.relax(mixture_model, pyro_redge.ReinMax())
    guide = pyro_redge.AutoRelaxed(model, pyro_redge.ReinMax())
    steps = 1500
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)}), Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=1))
    for _ in range(steps):
        svi.step(data)
    exact_means, exact_marginals = cases.mixture_exact_posterior()
    median = guide.median(data)
    fitted_means = median["means"].cpu().numpy()
    fitted_marginals = torch.softmax(pyro.param("AutoRelaxed.discrete.z"), -1).detach().cpu().numpy()
    mean_gap = abs(fitted_means - exact_means).max()
    marginal_gap = abs(fitted_marginals - exact_marginals).max()
    report(f"pyro AutoRelaxed(ReinMax) mixture: means {fitted_means.round(3)} vs exact {exact_means.round(3)}; max marginal gap {marginal_gap:.4f}")
    assert mean_gap < cases.MIXTURE_MEAN_BOUND and marginal_gap < cases.MIXTURE_MARGINAL_BOUND
    assert torch.equal(median["z"].argmax(-1).cpu(), torch.tensor(exact_marginals.argmax(-1)))
    quantiles = guide.quantiles([0.05, 0.95], data)["means"]
    assert quantiles.shape == (2, 2) and bool((quantiles[0] < median["means"]).all() & (median["means"] < quantiles[1]).all())
    predictive = Predictive(model, guide=guide, num_samples=5, return_sites=["z", "means"])(data)
    assert predictive["z"].shape == (5, len(data), 2) and bool((predictive["z"].sum(-1) == 1).all())


def test_auto_relaxed_on_an_unchanged_feature_model_reaches_the_exact_elbo_optimum(report, device):
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    weights = torch.tensor(cases.FEATURE_WEIGHTS, dtype=torch.float64, device=device)

    def model():
        with pyro.plate("features", 3):
            z = pyro.sample("z", host.Bernoulli(probs=torch.tensor(cases.FEATURE_PRIOR, dtype=torch.float64, device=device)))
        location = (z * weights).sum(-1, keepdim=True)
        pyro.sample("y", host.Normal(location, cases.FEATURE_SCALE), obs=torch.tensor(cases.FEATURE_DATA, dtype=torch.float64, device=device))

    model = pyro_redge.relax(model, pyro_redge.ReinMax())
    guide = pyro_redge.AutoRelaxed(model, pyro_redge.ReinMax())
    steps = 1000
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)}), Trace_ELBO(num_particles=32, vectorize_particles=True, max_plate_nesting=1))
    for _ in range(steps):
        svi.step()
    fitted = torch.sigmoid(pyro.param("AutoRelaxed.discrete.z")).detach().cpu().numpy()
    exact = cases.feature_mean_field_optimum()
    gap = float(abs(fitted - exact).max())
    report(f"pyro AutoRelaxed(ReinMax) feature model: {fitted.round(4)} vs exact-ELBO optimum {exact.round(4)} (gap {gap:.4f}); exact posterior marginals {cases.feature_posterior_marginals().round(4)}")
    assert gap < cases.FEATURE_MARGINAL_BOUND


def test_auto_relaxed_with_subsampling_and_count_sites(device):
    pyro.clear_param_store()
    data = torch.arange(10.0, dtype=torch.float64, device=device)

    def model(data):
        with pyro.plate("data", 10, subsample_size=4) as index:
            n = pyro.sample("n", host.Poisson(torch.tensor(3.0, dtype=torch.float64, device=device)))
            pyro.sample("x", host.Normal(n, 1.0), obs=data[index])

    model = pyro_redge.relax(model, pyro_redge.ReinMax())
    guide = pyro_redge.AutoRelaxed(model, pyro_redge.ReinMax())
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(5):
        svi.step(data)
    assert pyro.param("AutoRelaxed.discrete.n").shape == (10,), "the parameter has the plate's full size"
    medians = guide.median(data)["n"]
    assert medians.shape == (10,) and bool((medians == medians.round()).all())


def test_auto_relaxed_errors_name_the_site():
    def model():
        pyro.sample("c", host.Categorical(logits=torch.zeros(3)))

    guide = pyro_redge.AutoRelaxed(model)
    with pytest.raises(ValueError, match="site 'c'.*OneHotCategorical"):
        guide()
    with pytest.raises(ValueError, match="init_scale"):
        pyro_redge.AutoRelaxed(model, init_scale=0.0)
