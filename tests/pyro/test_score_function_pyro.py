"""Pyro-only: ScoreFunction_ELBO compiled by torch.jit (JitScoreFunction_ELBO), like Pyro's own
JitTraceGraph_ELBO (NumPyro's ELBOs are compiled by SVI itself, which tests/test_score_function.py
covers)."""

import numpy as np
import pytest

from tests.backends import PyroBackend
from tests.test_score_function import REPLICAS, exact_elbo_gradient, replica_estimates, replicated_problem


@pytest.mark.parametrize("global_estimator", ["RLOO", "DisARM"])
def test_jit_score_function_elbo_is_unbiased_against_enumeration(global_estimator):
    backend = PyroBackend()
    lib = backend.lib
    problem = replicated_problem(backend, getattr(lib, global_estimator)(), lib.DisARM())
    elbo = backend.elbo("JitScoreFunction_ELBO", 4)
    estimates = replica_estimates(backend, elbo, problem)
    assert elbo._jit_loss_and_surrogate_loss is not None  # the compiled path ran
    mean, standard_error = estimates.mean(0), estimates.std(0) / np.sqrt(REPLICAS)
    # 4.5 standard errors: a false alarm once in 1.5e5 per coordinate (as in test_score_function).
    np.testing.assert_array_less(np.abs(mean - exact_elbo_gradient()), 4.5 * standard_error)
