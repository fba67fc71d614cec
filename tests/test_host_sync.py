"""No host synchronisation in the hot path (issue 14): every estimator, and every distribution with a
static support, draws, scores and differentiates without reading a value on the host, with validation
off (the hosts' argument checks read values on the host by design). PyTorch runs under a guard that
fails on ``.item()``, ``bool()``, ``float()``, ``.tolist()``, ``.cpu()``, ``.numpy()`` and the like;
JAX traces and lowers the program NumPyro's SVI would compile under ``jax.transfer_guard("disallow")``
(see ``tests/host_sync.py`` and ``tests/backends.py``). One program covers them all."""

import numpy as np
import pytest

from tests import cases

CATEGORICAL_LOGITS = np.array([[0.3, -1.2, 0.5, 0.0], [1.0, 0.2, -0.4, -np.inf]])
SUBSET_LOGITS = np.array([[0.3, -1.2, 0.5, 0.0, 0.7], [1.0, 0.2, -0.4, -np.inf, 0.1]])
COUNT_PARAMETER = np.array([0.4, 1.3])  # rates, or logits of the binomial-type classes
WINDOW = (0, 40)  # a static window: the search itself reads the parameters on the host, once
# The three parameters, flattened into one differentiated argument.
SIZES = (CATEGORICAL_LOGITS.size, SUBSET_LOGITS.size, COUNT_PARAMETER.size)


def _estimators(backend, table):
    return {estimator_id: getattr(backend.lib, name)(**kwargs) for estimator_id, (name, kwargs) in table.items()}


def _count_distributions(backend, estimator):
    """Every count distribution of ours, with a static window, as ``parameter -> distribution``."""
    lib, dist = backend.lib, backend.dist
    return {
        "Bernoulli": lambda x: lib.Bernoulli(logits=x, estimator=estimator),
        "Poisson": lambda x: lib.Poisson(x, estimator=estimator, truncation=WINDOW),
        "Binomial": lambda x: lib.Binomial(20.0, logits=x, estimator=estimator, truncation=20),
        "Geometric": lambda x: lib.Geometric(logits=x, estimator=estimator, truncation=WINDOW),
        "NegativeBinomial": lambda x: lib.NegativeBinomial(3.0, logits=x - 2.0, estimator=estimator, truncation=WINDOW),
        "ReparameterizedDiscrete": lambda x: lib.ReparameterizedDiscrete(dist.Poisson(x), estimator, truncation=WINDOW),
    }


def test_estimators_and_distributions_never_wait_for_the_device(backend):
    categorical = _estimators(backend, {**cases.ESTIMATORS, "exact_redge": cases.EXACT_REDGE["exact_redge"]})
    subset = _estimators(backend, cases.SUBSET_ESTIMATORS)
    counts = _count_distributions(backend, backend.lib.ReinMax())
    keys = backend.rng(0)
    key = keys.next()
    weights = np.linspace(-1.0, 1.0, 5)
    host_weights = backend.array(weights[:4]), backend.array(weights)
    start = np.cumsum((0,) + SIZES)
    parameters = np.concatenate([CATEGORICAL_LOGITS.ravel(), SUBSET_LOGITS.ravel(), COUNT_PARAMETER])

    def total(parameters, key):
        logits, subset_logits, count_parameter = (
            parameters[start[i] : start[i + 1]].reshape(shape)
            for i, shape in enumerate([CATEGORICAL_LOGITS.shape, SUBSET_LOGITS.shape, COUNT_PARAMETER.shape])
        )
        result = 0.0
        for estimator in categorical.values():
            result = result + (backend.call(estimator, logits, key) * host_weights[0]).sum()
            d = backend.lib.OneHotCategorical(logits=logits, estimator=estimator)
            value = backend.rsample(d, key, (2,))
            result = result + (value * host_weights[0]).sum() + d.log_prob(value).sum()
        for estimator in subset.values():
            d = backend.lib.KSubset(subset_logits, 2, estimator=estimator)
            value = backend.rsample(d, key)
            result = result + (value * host_weights[1]).sum() + d.log_prob(value).sum() + d.mean.sum()
        for build in counts.values():
            d = build(count_parameter)
            value = backend.rsample(d, key, (3,))
            result = result + 0.5 * value.sum() + d.log_prob(value).sum()
        return result

    result = backend.unsynchronised_value_and_grad(total, parameters, key)
    if result is not None:  # PyTorch ran it; JAX traced and lowered it (see tests/backends.py)
        value, grad = result
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        # the masked category and item get exactly no gradient
        assert grad[start[0] + 7] == 0 and grad[start[1] + 8] == 0


def test_the_guard_catches_a_host_read(backend):
    """The guard of the test above is not vacuous: reading a value on the host inside it fails."""

    def reads_on_the_host(parameter, key):
        return parameter.sum() * float(parameter.sum())

    with pytest.raises(Exception, match="host synchronisation|[Cc]oncrete|[Tt]racer"):
        backend.unsynchronised_value_and_grad(reads_on_the_host, np.ones(3), backend.rng(0).next())
