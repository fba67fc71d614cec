"""Topic models on synthetic corpora with known topics: our ReinMax against exact enumeration
(LDA) and against REINFORCE (discrete codes, Poisson counts); the demo's pieces on the real corpus."""

import numpy as np
import pyro
import pytest

import redge_corpus
from pyro_redge import ReinMax
from pyro_redge.cli import plot_topic_results, print_topic_results, topic_model_demo
from pyro_redge.topic_models import LDA, DiscreteCodeTopicModel, PoissonTopicModel, fit
from tests import cases


def _fit_pair(make, corpus, device):
    train, held_out = corpus.subset(range(cases.TOPIC_TRAIN)), corpus.subset(range(cases.TOPIC_TRAIN, cases.TOPIC_DOCUMENTS))
    fitted = {}
    for name, estimator in [("reinmax", ReinMax()), ("baseline", None)]:
        topic_model = make(estimator, device)
        history = fit(topic_model, train, epochs=cases.TOPIC_EPOCHS, batch_size=cases.TOPIC_BATCH, learning_rate=cases.TOPIC_LEARNING_RATE, progress=False)
        assert np.isfinite(history["loss_per_token"]).all()
        fitted[name] = (topic_model, topic_model.held_out_bound_per_token(held_out))
    return fitted


def test_lda_with_relaxed_assignments_against_exact_enumeration(report, device):
    corpus, topics = redge_corpus.synthetic_lda_corpus(num_documents=cases.TOPIC_DOCUMENTS, num_topics=4, vocabulary_size=cases.TOPIC_VOCABULARY, document_length=40)
    fitted = _fit_pair(lambda estimator, device: LDA(cases.TOPIC_VOCABULARY, 4, estimator, concentration=0.3, device=device), corpus, device)
    recovery = {name: redge_corpus.topic_recovery(model.topics(), topics) for name, (model, _) in fitted.items()}
    gap = fitted["baseline"][1] - fitted["reinmax"][1]
    report(f"pyro LDA synthetic: topic recovery ReinMax {recovery['reinmax']:.3f}, TraceEnum_ELBO {recovery['baseline']:.3f}; held-out bound per token {fitted['reinmax'][1]:.3f} vs {fitted['baseline'][1]:.3f} (gap {gap:.3f})")
    assert recovery["baseline"] > cases.LDA_ENUMERATION_RECOVERY
    assert gap < cases.LDA_REINMAX_GAP_BOUND


def test_discrete_codes_relaxed_against_reinforce(report, device):
    corpus, _ = redge_corpus.synthetic_code_corpus(num_documents=cases.TOPIC_DOCUMENTS, vocabulary_size=cases.TOPIC_VOCABULARY)
    fitted = _fit_pair(lambda estimator, device: DiscreteCodeTopicModel(cases.TOPIC_VOCABULARY, 2, 4, estimator, device=device), corpus, device)
    lead = fitted["reinmax"][1] - fitted["baseline"][1]
    report(f"pyro discrete codes synthetic: held-out bound per token ReinMax {fitted['reinmax'][1]:.3f}, REINFORCE {fitted['baseline'][1]:.3f} (lead {lead:.3f})")
    assert lead > cases.CODES_REINMAX_LEAD


def test_poisson_counts_relaxed_against_reinforce(report, device):
    corpus, topics = redge_corpus.synthetic_poisson_corpus(num_documents=cases.TOPIC_DOCUMENTS, num_topics=4, vocabulary_size=cases.TOPIC_VOCABULARY)
    fitted = _fit_pair(lambda estimator, device: PoissonTopicModel(cases.TOPIC_VOCABULARY, 4, estimator, device=device), corpus, device)
    lead = fitted["reinmax"][1] - fitted["baseline"][1]
    recovery = {name: redge_corpus.topic_recovery(model.topics(), topics) for name, (model, _) in fitted.items()}
    report(f"pyro Poisson counts synthetic: held-out bound per token ReinMax {fitted['reinmax'][1]:.3f}, REINFORCE {fitted['baseline'][1]:.3f} (lead {lead:.3f}); recovery {recovery['reinmax']:.3f} vs {recovery['baseline']:.3f}")
    assert lead > 0
    # Our guide's values never leave the truncated support the prior is renormalised on.
    model = fitted["reinmax"][0]
    assert model.truncation == 30


def test_demo_pieces_run_on_the_news_corpus(tmp_path, capsys, device):
    train, held_out = redge_corpus.load_news_articles()
    train, held_out = train.subset(range(80)), held_out.subset(range(20))
    pyro.enable_validation(True)
    results = topic_model_demo(train, held_out, 5, {"lda": (1, 2), "codes": (1, 2)}, device=device, progress=False)
    assert [row["fit"] for row in results] == ["LDA[ReinMax]", "LDA[TraceEnum_ELBO]", "codes[ReinMax]", "codes[TraceGraph_ELBO]"]
    for row in results:
        assert np.isfinite(row["perplexity"]) and 1 < row["perplexity"] < 10 * train.vocabulary_size
        assert -1 <= row["coherence"] <= 1 and len(row["top_words"][0]) == 8
    print_topic_results(results)
    assert "top words" in capsys.readouterr().out
    plot_topic_results(results, tmp_path / "demo.png")
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_topic_models_reject_what_they_cannot_fit():
    with pytest.raises(ValueError, match="estimator"):
        LDA(10, 3, estimator="reinmax")
    with pytest.raises(ValueError, match="num_codes"):
        DiscreteCodeTopicModel(10, 0, 3)
    with pytest.raises(ValueError, match="truncation"):
        PoissonTopicModel(10, 3, truncation=2.5)
