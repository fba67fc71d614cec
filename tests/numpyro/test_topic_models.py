"""Topic models on synthetic corpora with known topics, in NumPyro: our ReinMax against exact
enumeration (LDA, TraceEnum_ELBO with funsor) and against REINFORCE (discrete codes, Poisson
counts). The demo's NumPyro half runs in tests/test_tutorials.py (tutorial 02)."""

import numpy as np
import pytest

import redge_corpus
from numpyro_redge import ReinMax
from numpyro_redge.topic_models import LDA, DiscreteCodeTopicModel, PoissonTopicModel, fit
from tests import cases

pytestmark = pytest.mark.usefixtures("x64", "validation")


def _fit_pair(make, corpus):
    train, held_out = corpus.subset(range(cases.TOPIC_TRAIN)), corpus.subset(range(cases.TOPIC_TRAIN, cases.TOPIC_DOCUMENTS))
    fitted = {}
    for name, estimator in [("reinmax", ReinMax()), ("baseline", None)]:
        topic_model = make(estimator)
        history = fit(topic_model, train, epochs=cases.TOPIC_EPOCHS, batch_size=cases.TOPIC_BATCH, learning_rate=cases.TOPIC_LEARNING_RATE, progress=False)
        assert np.isfinite(history["loss_per_token"]).all()
        fitted[name] = (topic_model, topic_model.held_out_bound_per_token(held_out))
    return fitted


def test_lda_with_relaxed_assignments_against_exact_enumeration(report):
    corpus, topics = redge_corpus.synthetic_lda_corpus(num_documents=cases.TOPIC_DOCUMENTS, num_topics=4, vocabulary_size=cases.TOPIC_VOCABULARY, document_length=40)
    fitted = _fit_pair(lambda estimator: LDA(cases.TOPIC_VOCABULARY, 4, estimator, concentration=0.3), corpus)
    recovery = {name: redge_corpus.topic_recovery(model.topics(), topics) for name, (model, _) in fitted.items()}
    gap = fitted["baseline"][1] - fitted["reinmax"][1]
    report(f"numpyro LDA synthetic: topic recovery ReinMax {recovery['reinmax']:.3f}, TraceEnum_ELBO {recovery['baseline']:.3f}; held-out bound per token {fitted['reinmax'][1]:.3f} vs {fitted['baseline'][1]:.3f} (gap {gap:.3f})")
    assert recovery["baseline"] > cases.LDA_ENUMERATION_RECOVERY
    assert gap < cases.LDA_REINMAX_GAP_BOUND


def test_discrete_codes_relaxed_against_reinforce(report):
    corpus, _ = redge_corpus.synthetic_code_corpus(num_documents=cases.TOPIC_DOCUMENTS, vocabulary_size=cases.TOPIC_VOCABULARY)
    fitted = _fit_pair(lambda estimator: DiscreteCodeTopicModel(cases.TOPIC_VOCABULARY, 2, 4, estimator), corpus)
    lead = fitted["reinmax"][1] - fitted["baseline"][1]
    report(f"numpyro discrete codes synthetic: held-out bound per token ReinMax {fitted['reinmax'][1]:.3f}, REINFORCE {fitted['baseline'][1]:.3f} (lead {lead:.3f})")
    assert lead > cases.CODES_REINMAX_LEAD


def test_poisson_counts_relaxed_against_reinforce(report):
    corpus, topics = redge_corpus.synthetic_poisson_corpus(num_documents=cases.TOPIC_DOCUMENTS, num_topics=4, vocabulary_size=cases.TOPIC_VOCABULARY)
    fitted = _fit_pair(lambda estimator: PoissonTopicModel(cases.TOPIC_VOCABULARY, 4, estimator), corpus)
    lead = fitted["reinmax"][1] - fitted["baseline"][1]
    recovery = {name: redge_corpus.topic_recovery(model.topics(), topics) for name, (model, _) in fitted.items()}
    report(f"numpyro Poisson counts synthetic: held-out bound per token ReinMax {fitted['reinmax'][1]:.3f}, REINFORCE {fitted['baseline'][1]:.3f} (lead {lead:.3f}); recovery {recovery['reinmax']:.3f} vs {recovery['baseline']:.3f}")
    assert lead > 0


def test_topic_models_reject_what_they_cannot_fit():
    with pytest.raises(ValueError, match="estimator"):
        LDA(10, 3, estimator="reinmax")
    with pytest.raises(ValueError, match="num_codes"):
        DiscreteCodeTopicModel(10, 0, 3)
    with pytest.raises(ValueError, match="truncation"):
        PoissonTopicModel(10, 3, truncation=2.5)
