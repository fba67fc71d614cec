"""NumPyro-only SVI mechanics (the shared behaviour is in tests/test_svi.py): NumPyro's own
optimisers, and its discrete-latent warning, silenced for our sites only."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO

import numpyro_redge
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def test_svi_with_numpyro_optim():
    prior = jnp.asarray(cases.SVI_PRIOR)
    estimator = numpyro_redge.ReinMax()

    def model():
        z = numpyro.sample("z", numpyro_redge.OneHotCategorical(probs=prior, estimator=estimator))
        numpyro.factor("likelihood", z @ jnp.asarray(cases.SVI_LOG_LIKELIHOOD))

    def guide():
        logits = numpyro.param("logits", jnp.zeros(len(cases.SVI_PRIOR)))
        numpyro.sample("z", numpyro_redge.OneHotCategorical(logits=logits, estimator=estimator))

    optimizer = numpyro.optim.Adam(optax.exponential_decay(0.05, cases.SVI_STEPS, 0.01))
    svi = SVI(model, guide, optimizer, Trace_ELBO(num_particles=cases.SVI_PARTICLES))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*discrete latent.*")
        result = svi.run(jax.random.PRNGKey(0), cases.SVI_STEPS, progress_bar=False)
    exact, _ = cases.svi_exact_posteriors()
    assert cases.total_variation(jax.nn.softmax(result.params["logits"]), exact) < cases.SVI_LINEAR_TV_BOUND["reinmax"]


def test_host_discrete_sites_still_warn():
    """The warning is silenced for our sites only: a host Categorical latent still raises it."""

    def model():
        numpyro.sample("z", host.Categorical(logits=jnp.zeros(3)))

    def guide():
        numpyro.sample("z", host.Categorical(logits=numpyro.param("logits", jnp.zeros(3))))

    svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
    with pytest.warns(UserWarning, match="discrete latent"):
        svi.init(jax.random.PRNGKey(0))


def test_topic_model_fit_reads_the_loss_from_the_device_once_per_epoch(monkeypatch):
    """Under ``jax.transfer_guard_device_to_host("disallow")`` a topic model's ``fit`` never reads a
    value on the host during its steps: the losses stay on the device and their sum is read once per
    epoch (allowed only there)."""
    from numpyro_redge import ReinMax
    from numpyro_redge.topic_models import DiscreteCodeTopicModel, fit, training
    from redge_core import corpus as redge_corpus

    corpus, _ = redge_corpus.synthetic_code_corpus(num_documents=40, vocabulary_size=30)
    reads, total_loss = [], training._total_loss

    def read_once(losses):
        with jax.transfer_guard_device_to_host("allow"):
            reads.append(len(losses))
            return total_loss(losses)

    monkeypatch.setattr(training, "_total_loss", read_once)
    with jax.transfer_guard_device_to_host("disallow"):
        history = fit(DiscreteCodeTopicModel(30, 2, 4, ReinMax()), corpus, epochs=2, batch_size=16, progress=False)
    assert reads == [3, 3] and np.all(np.isfinite(history["loss_per_token"]))


def test_topic_models_refuse_a_precision_jax_would_not_compute_in():
    """LDA computes in float64: with JAX's x64 off it would silently run in float32, so it refuses,
    naming ``dtype`` and how to enable x64 (it never changes the global setting itself)."""
    from numpyro_redge.topic_models import LDA, DiscreteCodeTopicModel

    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"dtype of LDA is float64.*x64"):
            LDA(10, 3)
        with pytest.raises(ValueError, match=r"dtype of DiscreteCodeTopicModel is float64"):
            DiscreteCodeTopicModel(10, 2, 3, dtype=jnp.float64)
        assert DiscreteCodeTopicModel(10, 2, 3).dtype == jnp.float32
    with jax.enable_x64(True):
        model = LDA(10, 3)
    with jax.enable_x64(False), pytest.raises(ValueError, match="x64"):
        numpyro.handlers.seed(model.model, 0)(None)
