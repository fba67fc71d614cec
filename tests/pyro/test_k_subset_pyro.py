"""Pyro-only: a KSubset instance computes its log-normaliser once (log_prob, the KL and the
marginals all read it; NumPyro never caches in an instance, whose pytree is its ``__dict__``, and
its compiled step shares the computation anyway)."""

import torch

import pyro_redge
from pyro_redge.distributions import k_subset


def test_the_log_normaliser_is_computed_once_per_instance_and_keeps_its_gradient(monkeypatch):
    calls = []
    original = k_subset.log_elementary_symmetric

    def counted(logits, k):
        calls.append(k)
        return original(logits, k)

    monkeypatch.setattr(k_subset, "log_elementary_symmetric", counted)
    logits = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    with torch.no_grad():  # a first read without gradient must not cache a value without one
        q = pyro_redge.KSubset(logits, 3)
        value = q.sample_exact()
        assert q.log_normalizer.shape == (3,)
    p = pyro_redge.KSubset(torch.zeros(3, 8, dtype=torch.float64), 3)
    loss = q.log_prob(value).sum() + torch.distributions.kl_divergence(q, p).sum() + q.marginals.pow(2).sum()
    assert len(calls) == 2  # q's and p's normalisers, once each
    (gradient,) = torch.autograd.grad(loss, logits)

    fresh = pyro_redge.KSubset(logits, 3)
    fresh_marginals = torch.autograd.grad(original(logits, 3).sum(), logits, create_graph=True)[0]
    expected_loss = (
        (value * logits).sum()
        - original(logits, 3).sum()
        + torch.distributions.kl_divergence(fresh, p).sum()
        + fresh_marginals.pow(2).sum()
    )
    (expected,) = torch.autograd.grad(expected_loss, logits)
    torch.testing.assert_close(gradient, expected, rtol=1e-10, atol=1e-12)
