"""Bag-of-words corpora and topic-model metrics shared by ``pyro_redge.topic_models`` and
``numpyro_redge.topic_models``: NumPy only, so that either host installs it alone.

- :func:`load_news_articles`: the bundled English news corpus (3 720 articles, 2 000 words; see
  ``redge_core/corpus/data/ATTRIBUTION.md`` for its source and license, and
  :mod:`redge_core.corpus.build_news_articles` for the script that rebuilds it).
- :func:`synthetic_lda_corpus`, :func:`synthetic_code_corpus`, :func:`synthetic_poisson_corpus`:
  corpora drawn from each topic model with known topics, for recovery tests.
- :func:`npmi_coherence`, :func:`topic_recovery`, :func:`top_words`: metrics.
"""

import dataclasses
import functools
import pathlib

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

DATA = pathlib.Path(__file__).parent / "data"

__all__ = [
    "Corpus",
    "document_chunks",
    "load_news_articles",
    "npmi_coherence",
    "synthetic_code_corpus",
    "synthetic_lda_corpus",
    "synthetic_poisson_corpus",
    "top_words",
    "topic_recovery",
]


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Documents as sparse word counts (compressed rows): document ``d`` holds the words
    ``word_indices[offsets[d]:offsets[d+1]]`` with multiplicities ``word_counts[...]``."""

    vocabulary: np.ndarray
    offsets: np.ndarray
    word_indices: np.ndarray
    word_counts: np.ndarray

    def __post_init__(self):
        if (
            self.offsets[0] != 0
            or self.offsets[-1] != len(self.word_indices)
            or len(self.word_indices) != len(self.word_counts)
        ):
            raise ValueError("offsets, word_indices and word_counts do not describe compressed rows")
        if len(self.word_indices) and int(self.word_indices.max()) >= len(self.vocabulary):
            raise ValueError("word_indices refer past the end of the vocabulary")

    @classmethod
    def from_counts(cls, counts, vocabulary=None):
        """The corpus of a dense ``(documents, vocabulary)`` count matrix (vocabulary ``w0, w1, …``
        unless given); for large corpora build the compressed rows directly."""
        counts = np.asarray(counts)
        corpus = _corpus_from_count_chunks([counts], counts.shape[1])
        return corpus if vocabulary is None else dataclasses.replace(corpus, vocabulary=np.asarray(vocabulary))

    @property
    def num_documents(self):
        return len(self.offsets) - 1

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    @property
    def num_tokens(self):
        return int(self.word_counts.sum())

    def subset(self, documents):
        """The corpus of the documents ``documents`` (indices), in that order."""
        documents = np.asarray(documents)
        starts, stops = self.offsets[documents], self.offsets[documents + 1]
        entries = (
            np.concatenate([np.arange(start, stop) for start, stop in zip(starts, stops, strict=True)])
            if len(documents)
            else np.zeros(0, int)
        )
        offsets = np.concatenate([[0], np.cumsum(stops - starts)])
        return Corpus(self.vocabulary, offsets, self.word_indices[entries], self.word_counts[entries])

    def bag_of_words(self, documents=None, dtype=np.float32):
        """Dense ``(documents, vocabulary)`` counts."""
        corpus = self if documents is None else self.subset(documents)
        counts = np.zeros((corpus.num_documents, corpus.vocabulary_size), dtype=dtype)
        rows = np.repeat(np.arange(corpus.num_documents), np.diff(corpus.offsets))
        counts[rows, corpus.word_indices] = corpus.word_counts
        return counts

    def tokens(self, documents=None):
        """``(document_of_token, word_of_token)``: every token of the documents, repeated words
        repeated, the documents numbered ``0..len(documents)-1``."""
        corpus = self if documents is None else self.subset(documents)
        rows = np.repeat(np.arange(corpus.num_documents), np.diff(corpus.offsets))
        return np.repeat(rows, corpus.word_counts), np.repeat(corpus.word_indices.astype(np.int64), corpus.word_counts)

    def document_frequencies(self, words=None):
        """``(single, pair)``: the number of documents containing each word of ``words`` (indices;
        default every word) and each pair of them, ``(len(words),)`` and ``(len(words),
        len(words))``. Computed from the sparse documents × words presence matrix (built once per
        corpus), so memory follows the stored entries and ``len(words)²``, never a dense
        documents × vocabulary or vocabulary × vocabulary array unless every word is asked for."""
        presence = self._presence if words is None else self._presence[:, np.asarray(words)]
        single = np.asarray(presence.sum(0)).ravel()
        pair = (presence.T @ presence).toarray()
        return single, pair

    def count_matrix(self):
        """The ``(documents, vocabulary)`` counts as a SciPy CSR matrix (float64, repeated entries
        summed, zeros dropped): memory follows the stored entries."""
        rows = np.repeat(np.arange(self.num_documents), np.diff(self.offsets))
        matrix = sparse.csr_matrix(
            (self.word_counts.astype(np.float64), (rows, self.word_indices)),
            shape=(self.num_documents, self.vocabulary_size),
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix

    @functools.cached_property
    def _presence(self):
        presence = self.count_matrix()
        presence.data[:] = 1.0
        return presence.tocsc()


def load_news_articles():
    """The bundled news corpus: ``(train, held_out)`` corpora over one 2 000-word vocabulary."""
    archive = np.load(DATA / "news_articles.npz")
    corpus = Corpus(
        archive["vocabulary"],
        archive["document_offsets"],
        archive["word_indices"].astype(np.int64),
        archive["word_counts"].astype(np.int64),
    )
    held_out = archive["held_out"]
    return corpus.subset(np.flatnonzero(~held_out)), corpus.subset(np.flatnonzero(held_out))


#: Documents drawn per chunk by the synthetic generators: their dense counts are one chunk at a
#: time (4 096 × vocabulary), so a corpus of 10^6 documents × 10^4 words never needs the dense
#: 10^6 × 10^4 matrix (≈ 30 GiB in int64) but only its stored entries.
GENERATOR_CHUNK_DOCUMENTS = 4096


def _corpus_from_count_chunks(chunks, vocabulary_size):
    """A :class:`Corpus` from dense ``(documents, vocabulary)`` count blocks, in order."""
    offsets, word_indices, word_counts = [np.zeros(1, np.int64)], [], []
    for counts in chunks:
        rows, words = np.nonzero(counts)
        offsets.append(offsets[-1][-1] + np.cumsum(np.bincount(rows, minlength=counts.shape[0])))
        word_indices.append(words.astype(np.int64))
        word_counts.append(counts[rows, words].astype(np.int64))
    vocabulary = np.array([f"w{v}" for v in range(vocabulary_size)])
    return Corpus(
        vocabulary,
        np.concatenate(offsets),
        np.concatenate(word_indices) if word_indices else np.zeros(0, np.int64),
        np.concatenate(word_counts) if word_counts else np.zeros(0, np.int64),
    )


def document_chunks(num_documents, chunk_documents):
    """The document indices ``0..num_documents-1`` in consecutive chunks of ``chunk_documents``
    (the last one shorter), as arrays: how the generators and the held-out evaluations stream."""
    return (
        np.arange(first, min(first + chunk_documents, num_documents))
        for first in range(0, num_documents, chunk_documents)
    )


def _sparse_topics(rng, num_topics, vocabulary_size, words_per_topic):
    """Topics concentrated on disjoint blocks of ``words_per_topic`` words (plus a little mass
    everywhere), so that recovery is well posed."""
    topics = np.full((num_topics, vocabulary_size), 0.05 / vocabulary_size)
    for k in range(num_topics):
        block = np.arange(k * words_per_topic, (k + 1) * words_per_topic) % vocabulary_size
        topics[k, block] += rng.dirichlet(np.ones(words_per_topic))
    return topics / topics.sum(-1, keepdims=True)


def synthetic_lda_corpus(
    num_documents=400, num_topics=5, vocabulary_size=100, document_length=60, concentration=0.3, seed=0
):
    """Documents drawn from LDA with known topics: ``(corpus, topics)``, ``topics`` of shape
    ``(num_topics, vocabulary_size)``."""
    rng = np.random.default_rng(seed)
    topics = _sparse_topics(rng, num_topics, vocabulary_size, vocabulary_size // num_topics)
    mixtures = rng.dirichlet(np.full(num_topics, concentration), size=num_documents)
    chunks = (
        np.stack([rng.multinomial(document_length, mixture @ topics) for mixture in mixtures[documents]])
        for documents in document_chunks(num_documents, GENERATOR_CHUNK_DOCUMENTS)
    )
    return _corpus_from_count_chunks(chunks, vocabulary_size), topics


def synthetic_code_corpus(
    num_documents=400, num_codes=2, code_size=4, vocabulary_size=100, document_length=60, strength=3.0, seed=0
):
    """Documents drawn from the discrete-code topic model: each document has ``num_codes``
    uniform categorical codes; its words are ``softmax(Σ_m codebooks[m, c_m])``. Returns
    ``(corpus, codebooks)`` with ``codebooks`` of shape ``(num_codes, code_size, vocabulary_size)``."""
    rng = np.random.default_rng(seed)
    blocks = _sparse_topics(rng, num_codes * code_size, vocabulary_size, vocabulary_size // (num_codes * code_size))
    codebooks = strength * (blocks > 0.05 / vocabulary_size * 1.5).reshape(num_codes, code_size, vocabulary_size)
    codes = rng.integers(code_size, size=(num_documents, num_codes))

    def chunk(documents):
        logits = codebooks[np.arange(num_codes), codes[documents]].sum(1)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return np.stack([rng.multinomial(document_length, p) for p in probs])

    counts = map(chunk, document_chunks(num_documents, GENERATOR_CHUNK_DOCUMENTS))
    return _corpus_from_count_chunks(counts, vocabulary_size), codebooks


def synthetic_poisson_corpus(
    num_documents=400, num_topics=5, vocabulary_size=100, topic_rate=3.0, words_per_count=12.0, seed=0
):
    """Documents drawn from the Poisson-count topic model: topic counts ``n_dk ~ Poisson(topic_rate)``
    and word counts ``x_dv ~ Poisson(Σ_k n_dk β_kv)``, each topic's ``β_k`` summing to
    ``words_per_count``. Returns ``(corpus, topics)`` with ``topics = β / words_per_count``."""
    rng = np.random.default_rng(seed)
    topics = _sparse_topics(rng, num_topics, vocabulary_size, vocabulary_size // num_topics)
    topic_counts = rng.poisson(topic_rate, size=(num_documents, num_topics))
    chunks = (
        rng.poisson(topic_counts[documents] @ (words_per_count * topics))
        for documents in document_chunks(num_documents, GENERATOR_CHUNK_DOCUMENTS)
    )
    return _corpus_from_count_chunks(chunks, vocabulary_size), topics


def top_words(topic_word_weights, vocabulary, count=10):
    """The ``count`` words of largest weight in each row of ``topic_word_weights``."""
    order = np.argsort(-np.asarray(topic_word_weights), axis=-1)[:, :count]
    return [[str(vocabulary[w]) for w in row] for row in order]


def npmi_coherence(topic_word_weights, corpus, count=10):
    r"""Mean normalised pointwise mutual information of each topic's ``count`` top words, from
    document co-occurrence in ``corpus``:

    .. math:: \mathrm{NPMI}(w_i, w_j) = \log\frac{P(w_i, w_j)}{P(w_i) P(w_j)} \Big/ -\log P(w_i, w_j),

    ``-1`` for a pair that never co-occurs. Returns the per-topic scores ``(topics,)``.

    **References:** Bouma, *Normalized (pointwise) mutual information in collocation extraction*,
    GSCL 2009; Lau, Newman and Baldwin, *Machine reading tea leaves*, EACL 2014.
    """
    documents = corpus.num_documents
    order = np.argsort(-np.asarray(topic_word_weights), axis=-1)[:, :count]
    scores = []
    for words in order:
        # Only the topic's own words: count × count pairs, whatever the vocabulary and corpus size.
        single, pair = corpus.document_frequencies(words)
        i, j = np.triu_indices(len(words), 1)
        joint = pair[i, j] / documents
        marginal = single[i] * single[j] / documents**2
        with np.errstate(divide="ignore", invalid="ignore"):
            npmi = np.where(joint > 0, np.log(joint / marginal) / -np.log(joint), -1.0)
        npmi = np.where(joint >= 1.0, 1.0, npmi)
        scores.append(npmi.mean())
    return np.array(scores)


def topic_recovery(fitted_topics, true_topics):
    """Mean cosine similarity between each true topic and the fitted topic matched to it by an
    optimal one-to-one assignment (1 = every topic recovered exactly)."""
    fitted = np.asarray(fitted_topics, dtype=np.float64)
    true = np.asarray(true_topics, dtype=np.float64)
    fitted = fitted / np.linalg.norm(fitted, axis=-1, keepdims=True)
    true = true / np.linalg.norm(true, axis=-1, keepdims=True)
    similarity = true @ fitted.T
    rows, columns = linear_sum_assignment(-similarity)
    return float(similarity[rows, columns].mean())
