import numpy as np
import pyro.distributions as host
import pytest
import torch
from torch.distributions import kl_divergence

import pyro_redge
from tests import cases


ESTIMATOR_IDS = list(cases.ESTIMATORS)


def make_estimator(estimator_id):
    name, kwargs = cases.ESTIMATORS[estimator_id]
    return getattr(pyro_redge, name)(**kwargs)


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_one_hot_categorical_samples_are_hard_and_reparameterized(estimator_id, parameter, device):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, device=device, requires_grad=True)
    params = {parameter: torch.softmax(logits, -1) if parameter == "probs" else logits}
    d = pyro_redge.OneHotCategorical(**params, estimator=make_estimator(estimator_id))
    assert d.has_rsample and d.batch_shape == (3,) and d.event_shape == (5,)
    value = d.rsample((4,))
    assert value.shape == (4, 3, 5) and value.requires_grad
    assert bool(((value == 0) | (value == 1)).all()) and bool((value.sum(-1) == 1).all())
    (grad,) = torch.autograd.grad((value * torch.randn_like(value)).sum(), logits)
    assert bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0
    hard = d.sample((2,))
    assert not hard.requires_grad and bool((hard.sum(-1) == 1).all())
    d.log_prob(value)  # validation accepts every value we produce


def test_one_hot_categorical_log_prob_is_exact_and_differentiable_in_value(device):
    torch.manual_seed(1)
    logits = torch.randn(2, 6, device=device, requires_grad=True)
    d = pyro_redge.OneHotCategorical(logits=logits)
    support = d.enumerate_support()
    assert support.shape == (6, 2, 6)
    expected = host.Categorical(logits=logits).log_prob(support.argmax(-1))
    torch.testing.assert_close(d.log_prob(support), expected)
    torch.testing.assert_close(d.log_prob(support).exp().sum(0), torch.ones(2, device=device))
    value = support[2].clone().requires_grad_()
    (grad_value,) = torch.autograd.grad(d.log_prob(value).sum(), value)
    torch.testing.assert_close(grad_value, torch.log_softmax(logits, -1).detach())


def test_zero_probabilities_are_exact_not_clamped(device):
    probs = torch.tensor([0.5, 0.0, 0.5], device=device, requires_grad=True)
    d = pyro_redge.OneHotCategorical(probs=probs, estimator=pyro_redge.StraightThrough())
    assert d.log_prob(torch.tensor([0.0, 1.0, 0.0], device=device)) == -torch.inf
    assert d.log_prob(torch.tensor([1.0, 0.0, 0.0], device=device)).item() == pytest.approx(np.log(0.5))
    value = d.rsample((1000,))
    assert value[:, 1].sum() == 0
    (grad,) = torch.autograd.grad((d.log_prob(value) + (value * torch.arange(3.0, device=device)).sum(-1)).sum(), probs)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("cls", [pyro_redge.OneHotCategorical, pyro_redge.Bernoulli])
def test_expand_keeps_class_and_estimator(cls, device):
    estimator = pyro_redge.ReinMax(temperature=2.0)
    shape = (4,) if cls is pyro_redge.OneHotCategorical else ()
    d = cls(logits=torch.zeros(shape, device=device), estimator=estimator)
    e = d.expand((2, 3))
    assert type(e) is cls and e.estimator is estimator and e.batch_shape == (2, 3)
    assert e.rsample().shape == (2, 3) + shape


@pytest.mark.parametrize("estimator_id", ESTIMATOR_IDS)
@pytest.mark.parametrize("parameter", ["probs", "logits"])
def test_bernoulli_samples_are_hard_with_exact_log_prob(estimator_id, parameter, device):
    torch.manual_seed(2)
    probs = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], device=device)
    params = {"probs": probs} if parameter == "probs" else {"logits": torch.logit(probs)}
    d = pyro_redge.Bernoulli(**params, estimator=make_estimator(estimator_id))
    value = d.rsample((4000,))
    assert value.shape == (4000, 5) and bool(((value == 0) | (value == 1)).all())
    assert bool((value[:, 0] == 0).all()) and bool((value[:, 4] == 1).all())
    support = d.enumerate_support()
    expected = host.Bernoulli(probs=probs.clamp(1e-12, 1 - 1e-12)).log_prob(support)
    ours = d.log_prob(support)
    finite = torch.isfinite(ours)
    torch.testing.assert_close(ours[finite], expected[finite])
    assert ours[0, 4] == -torch.inf and ours[1, 0] == -torch.inf


def test_bernoulli_law_and_gradient(device):
    torch.manual_seed(3)
    logits = torch.tensor([-1.0, 0.3], dtype=torch.float64, device=device, requires_grad=True)
    d = pyro_redge.Bernoulli(logits=logits, estimator=pyro_redge.StraightThrough())
    draws = 100_000
    value = d.rsample((draws,))
    probs = torch.sigmoid(logits)
    # 4.4 standard errors: false alarm 1e-5 per coordinate.
    stderr = (probs * (1 - probs) / draws).sqrt()
    assert bool(((value.mean(0) - probs).abs() < 4.4 * stderr).all())
    # Straight-through is exact for the mean: d/dlogit E[z] = p (1 - p).
    (grad,) = torch.autograd.grad(value.mean(0).sum(), logits)
    torch.testing.assert_close(grad, (probs * (1 - probs)).detach(), rtol=1e-10, atol=1e-12)
    value = value[:3].clone().requires_grad_()
    (grad_value,) = torch.autograd.grad(d.log_prob(value).sum(), value)
    torch.testing.assert_close(grad_value, logits.detach().expand(3, 2))


def _kl_by_enumeration(p, q_log_prob):
    support = p.enumerate_support()
    return (p.log_prob(support).exp() * (p.log_prob(support) - q_log_prob(support))).sum(0)


def test_kl_divergences_are_exact(device):
    torch.manual_seed(4)
    logits_p, logits_q = torch.randn(2, 3, 5, device=device).unbind(0)
    p = pyro_redge.OneHotCategorical(logits=logits_p)
    for q in [
        pyro_redge.OneHotCategorical(logits=logits_q),
        host.OneHotCategorical(logits=logits_q),
    ]:
        torch.testing.assert_close(kl_divergence(p, q), _kl_by_enumeration(p, q.log_prob))
        torch.testing.assert_close(kl_divergence(q, p), _kl_by_enumeration(pyro_redge.OneHotCategorical(logits=logits_q), p.log_prob))
    categorical = host.Categorical(logits=logits_q)
    torch.testing.assert_close(
        kl_divergence(p, categorical),
        _kl_by_enumeration(p, lambda v: categorical.log_prob(v.argmax(-1))),
    )
    torch.testing.assert_close(kl_divergence(categorical, p), kl_divergence(host.OneHotCategorical(logits=logits_q), p))
    b_p = pyro_redge.Bernoulli(logits=logits_p[0])
    for b_q in [pyro_redge.Bernoulli(probs=torch.sigmoid(logits_q[0])), host.Bernoulli(logits=logits_q[0])]:
        torch.testing.assert_close(kl_divergence(b_p, b_q), _kl_by_enumeration(b_p, b_q.log_prob))
        torch.testing.assert_close(kl_divergence(b_q, b_p), kl_divergence(torch.distributions.Bernoulli(logits=logits_q[0]), torch.distributions.Bernoulli(logits=logits_p[0])))


def test_kl_with_zero_probabilities(device):
    p = pyro_redge.OneHotCategorical(probs=torch.tensor([0.5, 0.5, 0.0], device=device))
    q = pyro_redge.OneHotCategorical(probs=torch.tensor([0.25, 0.0, 0.75], device=device))
    assert kl_divergence(p, q).item() == torch.inf
    assert kl_divergence(p, p).item() == 0.0
    r = pyro_redge.OneHotCategorical(probs=torch.tensor([0.25, 0.25, 0.5], device=device))
    assert kl_divergence(p, r).item() == pytest.approx(np.log(2.0))


@pytest.mark.parametrize("cls", [pyro_redge.OneHotCategorical, pyro_redge.Bernoulli])
def test_bad_input_names_the_argument(cls, device):
    shape = (3,) if cls is pyro_redge.OneHotCategorical else ()
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls(probs=torch.full(shape, 0.3), logits=torch.zeros(shape))
    with pytest.raises(ValueError, match="probs.*logits|logits.*probs"):
        cls()
    with pytest.raises(ValueError, match="logits"):
        cls(logits=torch.full(shape, torch.nan))
    with pytest.raises(ValueError, match="estimator"):
        cls(logits=torch.zeros(shape), estimator="redge")
    with pytest.raises(ValueError, match="probs"):
        cls(probs=torch.full(shape, 1.5))


def test_bad_values_in_log_prob(device):
    d = pyro_redge.OneHotCategorical(logits=torch.zeros(3, device=device))
    for bad in ([0.5, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="value"):
            d.log_prob(torch.tensor(bad, device=device))
    with pytest.raises(ValueError, match="probs"):
        pyro_redge.OneHotCategorical(probs=torch.tensor([0.5, 0.6, 0.1]))
    with pytest.raises(ValueError, match="value"):
        pyro_redge.Bernoulli(logits=torch.zeros(2)).log_prob(torch.tensor([0.5, 1.0]))
