"""Pyro-only mechanics of the topic models' training loop: the pathwise step never reads a value
on the host, and ``fit`` reads the epoch's losses once, at its end (NumPyro's twin is in
tests/numpyro/test_svi_numpyro.py)."""

import pyro
import pytest
import torch

from pyro_redge import ReinMax
from pyro_redge.topic_models import LDA, DiscreteCodeTopicModel, fit, training
from redge_core import corpus as redge_corpus
from tests.host_sync import torch_guard


@pytest.mark.parametrize("make", [lambda: DiscreteCodeTopicModel(30, 2, 4, ReinMax()), lambda: LDA(30, 3)])
def test_pathwise_loss_and_backward_never_read_the_device(make):
    """With validation off (validation reads values by design), the loss of a topic model and its
    backward pass run under the guard that fails on any host read; ``Trace_ELBO`` would fail it
    (it reads every site's log-probability)."""
    corpus, _ = redge_corpus.synthetic_code_corpus(num_documents=8, vocabulary_size=30)
    topic_model = make()
    batch = training.Batch.from_corpus(corpus, range(8), 5.0, dtype=topic_model.dtype)
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        training.pathwise_loss(topic_model.model, topic_model.guide, batch)  # parameters created
        with torch_guard():
            loss = training.pathwise_loss(topic_model.model, topic_model.guide, batch)
            loss.backward()
        with pytest.raises(Exception, match="host synchronisation"), torch_guard():
            pyro.infer.Trace_ELBO().loss_and_grads(topic_model.model, topic_model.guide, batch)


def test_fit_reads_the_pathwise_losses_once_per_epoch(monkeypatch):
    corpus, _ = redge_corpus.synthetic_code_corpus(num_documents=40, vocabulary_size=30)
    steps, run_epochs = [], training.run_epochs

    def recording_run_epochs(topic_model, corpus, step, *args, total_loss=None, **kwargs):
        def recorded_step(documents, scale):
            loss, tokens = step(documents, scale)
            steps.append(loss)
            return loss, tokens

        def recorded_total(losses):
            steps.append("read")
            return total_loss(losses)

        return run_epochs(topic_model, corpus, recorded_step, *args, total_loss=recorded_total, **kwargs)

    monkeypatch.setattr(training, "run_epochs", recording_run_epochs)
    fit(DiscreteCodeTopicModel(30, 2, 4, ReinMax()), corpus, epochs=2, batch_size=16, progress=False)
    assert ["read" if entry == "read" else type(entry) for entry in steps] == 2 * ([torch.Tensor] * 3 + ["read"])


def test_pathwise_loss_refuses_a_guide_site_without_rsample():
    def model():
        pyro.sample("k", pyro.distributions.Categorical(logits=torch.zeros(3)))

    def guide():
        pyro.sample("k", pyro.distributions.Categorical(logits=torch.zeros(3)))

    with pytest.raises(ValueError, match="site 'k' samples Categorical, which has no rsample"):
        training.pathwise_loss(model, guide)
