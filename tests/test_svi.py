"""SVI with a OneHotCategorical guide of ours reaches the exact posterior, in both hosts, under
Trace_ELBO and (with our analytic KL) TraceMeanField_ELBO. NumPyro's discrete-latent warning is an
error here: our sites must not raise it (tests/numpyro/test_svi_numpyro.py checks that a host
discrete site still does)."""

import numpy as np
import pytest
from scipy.special import softmax

from tests import cases

pytestmark = pytest.mark.filterwarnings("error:.*discrete latent")

# Every estimator under Trace_ELBO; TraceMeanField_ELBO differs only in taking the KL of our
# distributions analytically, a path that does not depend on the estimator: one estimator covers it.
LINEAR_CASES = [(estimator_id, "Trace_ELBO") for estimator_id in cases.SVI_LINEAR_TV_BOUND] + [
    ("reinmax", "TraceMeanField_ELBO")
]


def linear_likelihood(backend, z):
    backend.ppl.factor("likelihood", (z * backend.array(cases.SVI_LOG_LIKELIHOOD)).sum(-1))


def mixture_likelihood(backend, z):
    with backend.ppl.plate("data", len(cases.SVI_MIXTURE_DATA)):
        location = (z * backend.array(cases.SVI_MIXTURE_MEANS)).sum(-1)
        backend.ppl.sample(
            "x", backend.dist.Normal(location, cases.SVI_MIXTURE_SCALE), obs=backend.array(cases.SVI_MIXTURE_DATA)
        )


def fit_posterior(backend, estimator_id, elbo, likelihood):
    """Fit ``q(z) = OneHotCategorical(softmax(θ))`` by SVI; return the fitted probabilities."""
    name, kwargs = cases.ESTIMATORS[estimator_id]
    estimator = getattr(backend.lib, name)(**kwargs)
    prior = backend.array(cases.SVI_PRIOR)

    def model():
        z = backend.ppl.sample("z", backend.lib.OneHotCategorical(probs=prior, estimator=estimator))
        likelihood(backend, z)

    def guide():
        logits = backend.ppl.param("logits", backend.array(np.zeros(len(cases.SVI_PRIOR))))
        backend.ppl.sample("z", backend.lib.OneHotCategorical(logits=logits, estimator=estimator))

    params, _ = backend.fit(model, guide, cases.SVI_STEPS, 0.05, 0.0005, elbo=elbo, num_particles=cases.SVI_PARTICLES)
    return softmax(params["logits"])


@pytest.mark.parametrize("estimator_id, elbo", LINEAR_CASES)
def test_svi_reaches_the_exact_posterior_of_a_linear_model(backend, estimator_id, elbo, report):
    fitted = fit_posterior(backend, estimator_id, elbo, linear_likelihood)
    exact, _ = cases.svi_exact_posteriors()
    distance = cases.total_variation(fitted, exact)
    report(f"{backend.name} SVI {elbo:19s} {estimator_id:16s} linear model : TV to exact posterior {distance:.4f}")
    assert distance < cases.SVI_LINEAR_TV_BOUND[estimator_id]


@pytest.mark.parametrize("elbo", ["Trace_ELBO", "TraceMeanField_ELBO"])
@pytest.mark.parametrize("estimator_id", list(cases.SVI_MIXTURE_TV_BOUND))
def test_svi_reaches_the_exact_posterior_of_a_quadratic_mixture(backend, estimator_id, elbo, report):
    fitted = fit_posterior(backend, estimator_id, elbo, mixture_likelihood)
    _, exact = cases.svi_exact_posteriors()
    distance = cases.total_variation(fitted, exact)
    report(f"{backend.name} SVI {elbo:19s} {estimator_id:16s} mixture model: TV to exact posterior {distance:.4f}")
    assert distance < cases.SVI_MIXTURE_TV_BOUND[estimator_id]
