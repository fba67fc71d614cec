"""The bundled corpus and the backend-neutral topic-model metrics of redge_core.corpus."""

import numpy as np
import pytest

from redge_core import corpus as redge_corpus


def test_the_bundled_news_corpus_loads_with_a_disjoint_held_out_split():
    train, held_out = redge_corpus.load_news_articles()
    assert train.vocabulary_size == held_out.vocabulary_size == 2000
    assert train.num_documents + held_out.num_documents == 3720 and held_out.num_documents == 372
    assert train.num_tokens > 500_000
    counts = train.bag_of_words()
    assert counts.shape == (train.num_documents, 2000) and counts.sum() == train.num_tokens
    assert (counts.sum(1) >= 20).all(), "documents shorter than 20 kept tokens were dropped"
    documents, words = train.tokens([0, 1])
    assert len(words) == counts[:2].sum() and set(documents) == {0, 1}
    assert np.array_equal(np.bincount(words[documents == 1], minlength=2000), counts[1])


def test_npmi_matches_its_definition_on_a_small_corpus():
    # Four documents over three words: word 0 in docs {0,1,2}, word 1 in {0,1}, word 2 in {3}.
    counts = np.array([[1, 2, 0], [3, 1, 0], [1, 0, 0], [0, 0, 4]])
    corpus = redge_corpus.Corpus.from_counts(counts)
    p0, p1, p01 = 3 / 4, 2 / 4, 2 / 4
    expected_01 = np.log(p01 / (p0 * p1)) / -np.log(p01)
    # Top-3 words of the topic are 0, 1, 2: pairs (0,1), (0,2), (1,2); the last two never co-occur.
    score = redge_corpus.npmi_coherence(np.array([[0.5, 0.3, 0.2]]), corpus, count=3)
    np.testing.assert_allclose(score, [(expected_01 - 1 - 1) / 3])


def test_topic_recovery_is_one_for_permuted_topics_and_lower_otherwise():
    _, topics = redge_corpus.synthetic_lda_corpus(num_documents=10, seed=1)
    assert redge_corpus.topic_recovery(topics[::-1], topics) == pytest.approx(1.0)
    assert redge_corpus.topic_recovery(np.ones_like(topics), topics) < 0.5


def test_synthetic_corpora_have_the_requested_shapes():
    corpus, topics = redge_corpus.synthetic_lda_corpus(
        num_documents=30, num_topics=3, vocabulary_size=40, document_length=25
    )
    assert corpus.num_documents == 30 and topics.shape == (3, 40) and (corpus.bag_of_words().sum(1) == 25).all()
    corpus, codebooks = redge_corpus.synthetic_code_corpus(
        num_documents=20, num_codes=2, code_size=3, vocabulary_size=30
    )
    assert corpus.num_documents == 20 and codebooks.shape == (2, 3, 30)
    corpus, topics = redge_corpus.synthetic_poisson_corpus(num_documents=20, num_topics=2, vocabulary_size=30)
    assert corpus.num_documents == 20 and topics.shape == (2, 30)


def test_a_malformed_corpus_is_rejected():
    with pytest.raises(ValueError, match="offsets"):
        redge_corpus.Corpus(np.array(["a", "b"]), np.array([0, 3]), np.array([0, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match="vocabulary"):
        redge_corpus.Corpus(np.array(["a"]), np.array([0, 1]), np.array([4]), np.array([1]))


@pytest.mark.parametrize("generator", ["synthetic_lda_corpus", "synthetic_code_corpus", "synthetic_poisson_corpus"])
def test_synthetic_corpora_do_not_depend_on_the_generation_chunk(monkeypatch, generator):
    """The generators draw the documents in chunks (their dense counts one chunk at a time): the
    corpus is the same, bit for bit, whatever the chunk size."""
    whole, topics = getattr(redge_corpus, generator)(num_documents=50, vocabulary_size=40, seed=3)
    monkeypatch.setattr(redge_corpus, "GENERATOR_CHUNK_DOCUMENTS", 7)
    chunked, chunked_topics = getattr(redge_corpus, generator)(num_documents=50, vocabulary_size=40, seed=3)
    assert whole.num_documents == chunked.num_documents == 50 and np.array_equal(topics, chunked_topics)
    for field in ("vocabulary", "offsets", "word_indices", "word_counts"):
        assert np.array_equal(getattr(whole, field), getattr(chunked, field)), field


def test_npmi_reads_only_the_topics_words():
    """Document frequencies of a few words (what the coherence asks for, topic by topic) equal
    the dense computation."""
    corpus, _ = redge_corpus.synthetic_lda_corpus(num_documents=30, vocabulary_size=25, seed=4)
    presence = corpus.bag_of_words() > 0
    words = np.array([3, 17, 0, 24])
    single, pair = corpus.document_frequencies(words)
    np.testing.assert_array_equal(single, presence[:, words].sum(0))
    np.testing.assert_array_equal(pair, presence[:, words].T.astype(int) @ presence[:, words].astype(int))
