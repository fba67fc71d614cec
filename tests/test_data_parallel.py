"""Data parallelism on CPU: two PyTorch processes over gloo (``torchrun``), two forced JAX host
devices (``tests/conftest.py`` asks XLA for two). Each compares gradients and a few optimiser
steps with the single-process run, for the same noise: the processes or devices must reproduce
it up to the order of floating-point sums. AIMLE is the estimator that can tell: its step size
couples the documents through two norms, which must be reduced across the group."""

import functools
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from redge_core.corpus import load_news_articles

PROJECT_ROOT = __file__.rsplit("/tests/", 1)[0]


def small_corpora():
    """30 short news articles (at most 150 tokens each) as 20 training and 10 held-out documents:
    minibatches of 8 stay within one token bucket, so that JAX compiles one step per fit."""
    train, _ = load_news_articles()
    short = np.flatnonzero(np.add.reduceat(train.word_counts, train.offsets[:-1]) <= 150)[:30]
    return train.subset(short[:20]), train.subset(short[20:])


@pytest.mark.skipif(importlib.util.find_spec("pyro") is None, reason="pyro is not installed")
def test_pyro_data_parallel_over_two_processes_equals_one_process(tmp_path):
    output = tmp_path / "report"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    completed = subprocess.run(
        [*command, "-m", "tests.data_parallel_pyro", str(output)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # torchrun's own warnings (W...) crowd out the processes' tracebacks.
    output = [line for line in (completed.stdout + completed.stderr).splitlines() if not line.startswith("W")]
    assert completed.returncode == 0, "\n".join(output[:80])
    reports = [json.loads((tmp_path / f"report.{rank}.json").read_text()) for rank in range(2)]
    for report in reports:
        # float64 throughout: what differs is the order of the sums (share by share, then across).
        for name, difference in report["gradient_differences"].items():
            assert difference < 1e-12, name
        assert report["parameter_difference"] < 1e-12 * max(1.0, report["parameter_scale"])
        assert report["difference_between_processes"] == 0.0
        for parallel, single in (report["loss_per_token"], report["held_out_bound_per_token"]):
            np.testing.assert_allclose(parallel, single, rtol=1e-12)
    assert reports[0]["loss_per_token"] == reports[1]["loss_per_token"]


@pytest.fixture
def numpyro_x64():
    """NumPyro's backend (float64 enabled) on at least two devices."""
    if importlib.util.find_spec("numpyro") is None:
        pytest.skip("numpyro is not installed")
    import jax

    from tests.backends import BACKENDS

    assert len(jax.devices()) >= 2, "tests/conftest.py asks XLA for two host devices before JAX starts"
    backend = BACKENDS["numpyro"]("cpu")
    with backend.validation(True), backend.x64():
        yield backend


def test_numpyro_fit_over_two_devices_equals_one_device(numpyro_x64, monkeypatch):
    import jax
    import jax.numpy as jnp

    from numpyro_redge import distributed
    from numpyro_redge.estimators import AIMLE
    from numpyro_redge.topic_models import DiscreteCodeTopicModel, fit

    corpus, held_out = small_corpora()
    placed = []
    shard_rows = distributed.shard_rows

    def recording_shard_rows(tree, mesh):
        sharded = shard_rows(tree, mesh)
        placed.extend(len(leaf.sharding.device_set) for leaf in jax.tree.leaves(sharded))
        return sharded

    monkeypatch.setattr(distributed, "shard_rows", recording_shard_rows)
    results = {}
    for parallel in (True, False):
        topic_model = DiscreteCodeTopicModel(corpus.vocabulary_size, 2, 4, AIMLE(), hidden_size=8, dtype=jnp.float64)
        # batch 8 of 20 documents, two epochs: six steps, the last of each epoch 4 documents.
        history = fit(
            topic_model, corpus, epochs=2, batch_size=8, held_out=held_out, progress=False, data_parallel=parallel
        )
        results[parallel] = history, topic_model.params
    assert placed and all(devices == len(jax.devices()) for devices in placed)
    (parallel_history, parallel_parameters), (single_history, single_parameters) = results[True], results[False]
    for name, value in single_parameters.items():
        np.testing.assert_allclose(parallel_parameters[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
    for key in ("loss_per_token", "held_out_bound_per_token"):
        np.testing.assert_allclose(parallel_history[key], single_history[key], rtol=1e-12)


def test_numpyro_estimator_gradients_over_two_devices(numpyro_x64):
    """Every estimator's gradient for the same key, with the minibatch's rows split over the
    devices under ``jit`` (global reductions), and AIMLE's under ``shard_map`` within
    ``reduce_statistics`` (each device its rows, the statistics summed over the axis)."""
    import jax
    import jax.numpy as jnp

    from numpyro_redge import distributed
    from numpyro_redge.estimators import AIMLE, GumbelRao, GumbelSoftmax, ReDGE, ReinMax, StraightThrough

    estimators = [StraightThrough(), GumbelSoftmax(), ReinMax(), ReDGE(), GumbelRao(), AIMLE()]
    mesh = distributed.data_parallel_mesh()
    rows = distributed.padded_rows(10, mesh)
    weights = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
    features = jax.random.normal(jax.random.PRNGKey(1), (rows, 3))

    def loss(weights, features, estimator, noise):
        sample = estimator.apply(features @ weights, *noise)
        return jnp.sum((sample @ weights.T - features) ** 2)

    @jax.jit
    def gradients(weights, features, key):
        return [
            jax.grad(loss)(weights, features, estimator, estimator.sample_noise(key, features @ weights))
            for estimator in estimators
        ]

    key = jax.random.PRNGKey(2)
    single = gradients(weights, features, key)
    split = gradients(weights, distributed.shard_rows(features, mesh), key)
    for estimator, expected, actual in zip(estimators, single, split, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-13, err_msg=type(estimator).__name__)

    aimle = estimators[-1]
    noise = aimle.sample_noise(key, features @ weights)  # the noise the jitted gradients drew
    spec = jax.sharding.PartitionSpec(distributed.DATA_AXIS)

    @functools.partial(jax.jit, static_argnums=3)
    def mapped_gradient(weights, features, noise, reduce):
        def local(features, noise):
            with distributed.reduce_statistics(distributed.DATA_AXIS if reduce else None):
                return jax.grad(loss)(weights, features, aimle, noise)  # summed over the devices by shard_map

        return jax.shard_map(local, mesh=mesh, in_specs=(spec, (spec,)), out_specs=jax.sharding.PartitionSpec())(
            features, noise
        )

    np.testing.assert_allclose(mapped_gradient(weights, features, noise, True), single[-1], rtol=1e-12, atol=1e-13)
    # Without the reduction each device's step would follow its own rows' norms: refused.
    with pytest.raises(ValueError, match="reduce_statistics"):
        mapped_gradient(weights, features, noise, False)


@pytest.mark.skipif(importlib.util.find_spec("pyro") is None, reason="pyro is not installed")
def test_pyro_data_parallel_outside_torchrun_names_what_is_missing(monkeypatch):
    import torch.distributed

    from pyro_redge import distributed

    if torch.distributed.is_initialized():
        pytest.skip("this process already belongs to a process group")
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun") as error:
        distributed.process_group()
    assert all(name in str(error.value) for name in distributed.TORCHRUN_VARIABLES)


def test_numpyro_rows_that_do_not_split_evenly_are_refused(numpyro_x64):
    from numpyro_redge import distributed

    mesh = distributed.data_parallel_mesh()
    with pytest.raises(ValueError, match=f"pad it to {distributed.padded_rows(3, mesh)} rows"):
        distributed.shard_rows(np.zeros((3, 2)), mesh)
