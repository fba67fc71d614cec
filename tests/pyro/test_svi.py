import pyro
import pyro.distributions as host
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

import pyro_redge
from tests import cases

ELBOS = {"Trace_ELBO": Trace_ELBO, "TraceMeanField_ELBO": TraceMeanField_ELBO}
SVI_ESTIMATORS = list(cases.SVI_LINEAR_TV_BOUND)


def fit(estimator, elbo_class, likelihood, device):
    """Fit ``q(z) = OneHotCategorical(softmax(θ))`` by SVI; return the fitted probabilities."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    prior = as_tensor(cases.SVI_PRIOR)

    def model():
        z = pyro.sample("z", pyro_redge.OneHotCategorical(probs=prior, estimator=estimator))
        likelihood(z, as_tensor)

    def guide():
        logits = pyro.param("logits", torch.zeros(len(prior), dtype=torch.float64, device=device))
        pyro.sample("z", pyro_redge.OneHotCategorical(logits=logits, estimator=estimator))

    optimizer = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / cases.SVI_STEPS)})
    elbo = elbo_class(num_particles=cases.SVI_PARTICLES, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, optimizer, elbo)
    for _ in range(cases.SVI_STEPS):
        svi.step()
    return torch.softmax(pyro.param("logits").detach(), -1).cpu().numpy()


def linear_likelihood(z, as_tensor):
    pyro.factor("likelihood", z @ as_tensor(cases.SVI_LOG_LIKELIHOOD))


def mixture_likelihood(z, as_tensor):
    with pyro.plate("data", len(cases.SVI_MIXTURE_DATA)):
        location = z @ as_tensor(cases.SVI_MIXTURE_MEANS)
        pyro.sample("x", host.Normal(location, cases.SVI_MIXTURE_SCALE), obs=as_tensor(cases.SVI_MIXTURE_DATA))


@pytest.mark.parametrize("elbo", list(ELBOS))
@pytest.mark.parametrize("estimator_id", SVI_ESTIMATORS)
def test_svi_reaches_the_exact_posterior_of_a_linear_model(estimator_id, elbo, report, device):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    fitted = fit(getattr(pyro_redge, name)(**kwargs), ELBOS[elbo], linear_likelihood, device)
    exact, _ = cases.svi_exact_posteriors()
    distance = cases.total_variation(fitted, exact)
    report(f"pyro SVI {elbo:19s} {estimator_id:16s} linear model : TV to exact posterior {distance:.4f}")
    assert distance < cases.SVI_LINEAR_TV_BOUND[estimator_id]


@pytest.mark.parametrize("elbo", list(ELBOS))
@pytest.mark.parametrize("estimator_id", SVI_ESTIMATORS)
def test_svi_distance_on_a_gaussian_mixture_is_measured(estimator_id, elbo, report, device):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    fitted = fit(getattr(pyro_redge, name)(**kwargs), ELBOS[elbo], mixture_likelihood, device)
    _, exact = cases.svi_exact_posteriors()
    distance = cases.total_variation(fitted, exact)
    report(f"pyro SVI {elbo:19s} {estimator_id:16s} mixture model: TV to exact posterior {distance:.4f}")
    assert distance < cases.SVI_MIXTURE_TV_BOUND.get(estimator_id, 1.0)
