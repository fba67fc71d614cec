"""PyTorch-only mechanics of the estimators: non-contiguous tensors, a second backward pass on the
same graph, and AIMLE's state kept across the steps of Pyro's SVI by a hand-written guide."""

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

import pyro_redge
from tests import cases


@pytest.mark.parametrize("estimator_id", list(cases.ESTIMATORS))
def test_expanded_and_batched_logits(estimator_id):
    """Non-contiguous (expanded) logits with several batch axes: the reference reinmax fails here."""
    torch.manual_seed(0)
    name, kwargs = cases.ESTIMATORS[estimator_id]
    base = torch.randn(3, 1, 5, requires_grad=True)
    sample = getattr(pyro_redge, name)(**kwargs)(base.expand(3, 4, 5))
    assert sample.shape == (3, 4, 5) and bool((sample.sum(-1) == 1).all())
    (grad,) = torch.autograd.grad((sample * torch.randn_like(sample)).sum(), base)
    assert grad.shape == base.shape and bool(torch.isfinite(grad).all())


def test_a_second_backward_pass_on_the_same_graph_changes_nothing():
    """The old AIMLE moved its internal state in every backward pass; now an extra
    ``autograd.grad`` on the same graph gives the same gradients and leaves the state alone."""
    torch.manual_seed(1)
    estimator = pyro_redge.AIMLE()
    state = estimator.init_state(torch.float64)
    logits = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    beta = state.beta.clone().requires_grad_()
    loss = (estimator(logits, k=2, beta=beta) * torch.randn(8, 6, dtype=torch.float64)).sum()
    first = torch.autograd.grad(loss, (logits, beta), retain_graph=True)
    second = torch.autograd.grad(loss, (logits, beta))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert float(state.beta) == 1.0 and float(state.density) == 1.0 and estimator == pyro_redge.AIMLE()


def test_aimle_state_in_a_hand_written_guide():
    """The loop of the AIMLE docstring: the guide takes β from the state, the density is read from
    ``beta.grad`` after ``svi.step`` and the state advanced outside the backward pass."""
    pyro.clear_param_store()
    pyro.set_rng_seed(2)
    target = torch.tensor(cases.SUBSET_OPT_TARGET)
    estimator = pyro_redge.AIMLE(target_density=4.0, step=0.01)
    state = estimator.init_state(torch.float64)

    def model(beta):
        z = pyro.sample("z", pyro_redge.KSubset(torch.zeros(10, dtype=torch.float64), cases.SUBSET_OPT_K))
        pyro.factor("fit", -4.0 * ((z - target) ** 2).sum())

    def guide(beta):
        logits = pyro.param("logits", 0.01 * torch.randn(10, dtype=torch.float64))
        pyro.sample("z", pyro_redge.KSubset(logits, cases.SUBSET_OPT_K, estimator, beta=beta))

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    betas = []
    for _ in range(20):
        beta = state.beta.clone().requires_grad_()
        svi.step(beta)
        # One site and one particle: the gradient of beta is that call's density, in [0, n].
        assert 0 <= float(beta.grad) <= 10
        state = estimator.update_state(state, beta.grad)
        betas.append(float(state.beta))
    # The density of a single-site k-subset gradient stays below 4 here: β rises by the step.
    assert betas == pytest.approx([1.0 + 0.01 * (t + 1) for t in range(20)])
