import pyro
import pyro.distributions as host
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

import pyro_redge
from tests import cases


HOST_TO_OURS = [
    (lambda: host.OneHotCategorical(logits=torch.randn(3, 4)), pyro_redge.OneHotCategorical, "logits"),
    (lambda: host.OneHotCategorical(probs=torch.full((3, 4), 0.25)), pyro_redge.OneHotCategorical, "probs"),
    (lambda: host.Bernoulli(probs=torch.full((3,), 0.3)), pyro_redge.Bernoulli, "probs"),
    (lambda: host.Bernoulli(logits=torch.zeros(3)), pyro_redge.Bernoulli, "logits"),
    (lambda: host.Poisson(torch.full((3,), 2.0)), pyro_redge.Poisson, "rate"),
    (lambda: host.Binomial(torch.full((3,), 5.0), probs=torch.full((3,), 0.4)), pyro_redge.Binomial, "probs"),
    (lambda: host.Geometric(probs=torch.full((3,), 0.4)), pyro_redge.Geometric, "probs"),
    (lambda: host.NegativeBinomial(torch.full((3,), 2.0), logits=torch.zeros(3)), pyro_redge.NegativeBinomial, "logits"),
]


@pytest.mark.parametrize("make_host, ours, parameter", HOST_TO_OURS)
def test_host_sites_become_ours_inside_plates_with_wrappers(make_host, ours, parameter):
    base = make_host()
    mask = torch.tensor([True, False, True])

    def model():
        with pyro.plate("items", 3):
            plain = pyro.sample("plain", base)
            masked = pyro.sample("masked", base.mask(mask))
        with pyro.plate("pairs", 2):
            wrapped = pyro.sample("wrapped", base.expand([2, 3]).to_event(1))
        return plain, wrapped, masked

    reparam = pyro_redge.RelaxReparam(pyro_redge.ReinMax())
    trace = poutine.trace(poutine.reparam(model, config={"plain": reparam, "wrapped": reparam, "masked": reparam})).get_trace()
    plain = trace.nodes["plain"]["fn"]
    assert type(plain) is ours and plain.estimator == pyro_redge.ReinMax()
    torch.testing.assert_close(getattr(plain, parameter), getattr(base, parameter))
    assert trace.nodes["wrapped"]["fn"].event_shape == (3,) + base.event_shape
    assert trace.nodes["wrapped"]["fn"].batch_shape == (2,)
    assert isinstance(trace.nodes["masked"]["fn"], pyro.distributions.torch_distribution.MaskedDistribution)
    assert type(trace.nodes["masked"]["fn"].base_dist) is ours
    trace.log_prob_sum()  # validation accepts the values the relaxed sites drew


def test_observed_sites_are_left_alone():
    def model():
        pyro.sample("x", host.Poisson(torch.tensor(2.0)), obs=torch.tensor(3.0))

    trace = poutine.trace(poutine.reparam(model, config={"x": pyro_redge.RelaxReparam()})).get_trace()
    assert type(trace.nodes["x"]["fn"]) is host.Poisson and trace.nodes["x"]["value"].item() == 3.0


@pytest.mark.parametrize(
    "make_fn, reparam, message",
    [
        (lambda: host.Categorical(logits=torch.zeros(3)), pyro_redge.RelaxReparam(), "site 'z'.*integer index.*OneHotCategorical"),
        (lambda: host.Normal(0.0, 1.0), pyro_redge.RelaxReparam(), "site 'z'.*Normal is not supported"),
        (lambda: host.Bernoulli(probs=torch.tensor(0.3)), pyro_redge.RelaxReparam(pyro_redge.IMLE(samples=2)), "site 'z'.*estimator"),
    ],
)
def test_errors_name_the_site(make_fn, reparam, message):
    def model():
        pyro.sample("z", make_fn())

    with pytest.raises(ValueError, match=message):
        poutine.trace(poutine.reparam(model, config={"z": reparam})).get_trace()


def test_an_unchanged_model_is_fitted_by_svi_to_the_enumerated_posterior(report, device):
    """A sparse Bernoulli feature model written with Pyro's own Bernoulli, made relaxed by one
    line of reparam, and a mean-field guide of ours: ReinMax reaches the optimum of the exact ELBO
    over that family (by enumeration)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    weights = torch.tensor(cases.FEATURE_WEIGHTS, dtype=torch.float64, device=device)
    prior = torch.tensor(cases.FEATURE_PRIOR, dtype=torch.float64, device=device)

    def model():
        with pyro.plate("features", 3):
            z = pyro.sample("z", host.Bernoulli(probs=prior))
        # keepdim: the particle plate of vectorize_particles sits at dim -2.
        location = (z * weights).sum(-1, keepdim=True)
        pyro.sample("y", host.Normal(location, cases.FEATURE_SCALE), obs=torch.tensor(cases.FEATURE_DATA, dtype=torch.float64, device=device))

    def guide():
        logits = pyro.param("logits", torch.zeros(3, dtype=torch.float64, device=device))
        with pyro.plate("features", 3):
            pyro.sample("z", pyro_redge.Bernoulli(logits=logits, estimator=pyro_redge.ReinMax()))

    relaxed = poutine.reparam(model, config={"z": pyro_redge.RelaxReparam(pyro_redge.ReinMax())})
    steps = 1000
    svi = SVI(relaxed, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)}), Trace_ELBO(num_particles=32, vectorize_particles=True, max_plate_nesting=1))
    for _ in range(steps):
        svi.step()
    fitted = torch.sigmoid(pyro.param("logits")).detach().cpu().numpy()
    exact = cases.feature_mean_field_optimum()
    gap = float(abs(fitted - exact).max())
    report(f"pyro RelaxReparam(ReinMax) feature model: guide {fitted.round(4)} vs exact-ELBO optimum {exact.round(4)}, max gap {gap:.4f}")
    assert gap < cases.FEATURE_MARGINAL_BOUND
