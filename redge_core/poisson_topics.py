"""The backend-neutral half of both hosts' ``PoissonTopicModel`` (NumPy and SciPy only): the
data-driven start of its topics by Poisson non-negative matrix factorisation (:func:`poisson_nmf`),
its check and conversion to the model's unconstrained parameter (:func:`initial_topic_parameter`),
the prior's log-pmf on the count window (:func:`count_prior_log_pmf`) and the unconstrained value
of a rate (:func:`inverse_softplus`)."""

import numbers

import numpy as np
from scipy import special

from redge_core.checks import check_positive, check_positive_integer
from redge_core.corpus import Corpus

#: The smallest initial topic rate, relative to the mean topic's total rate: the multiplicative
#: updates of :func:`poisson_nmf` drive rates to exact zeros, which the softplus parameter of the
#: topic rates cannot represent (and from which a gradient step could not move them).
RATE_FLOOR = 1e-4


def count_prior_log_pmf(prior_rate, truncation):
    r"""The log-pmf of the prior :math:`\mathrm{Poisson}(\lambda_0)` on ``0..truncation`` up to its
    normaliser, :math:`n \log \lambda_0 - \log n!` (``(truncation + 1,)``, float64): the
    logits of the prior, and a term of the guide's."""
    check_positive("prior_rate", prior_rate)
    check_positive_integer("truncation", truncation)
    counts = np.arange(truncation + 1, dtype=np.float64)
    return counts * np.log(prior_rate) - special.gammaln(counts + 1)


#: The largest documents × words count matrix that :func:`poisson_nmf` holds dense (2^22 elements,
#: 32 MiB in float64), where dense products are faster than visiting the stored entries; a larger
#: one stays sparse.
DENSE_ELEMENTS = 2**22


class _Counts:
    """The counts to factorise and their ratio to the fitted rates, :math:`x / (w \beta)`: dense
    arrays for a small corpus, else the stored entries of a sparse CSR matrix (the ratio is zero
    wherever the count is)."""

    def __init__(self, corpus):
        self.shape = (corpus.num_documents, corpus.vocabulary_size)
        self.dense = corpus.num_documents * corpus.vocabulary_size <= DENSE_ELEMENTS
        if self.dense:
            self.values = corpus.bag_of_words(dtype=np.float64)
            return
        matrix = corpus.count_matrix()
        self.matrix, self.values = matrix, matrix.data
        self.rows, self.columns = np.repeat(np.arange(self.shape[0]), np.diff(matrix.indptr)), matrix.indices

    def word_means(self):
        return np.asarray(self.values.sum(0) if self.dense else self.matrix.sum(0)).ravel() / self.shape[0]

    def rates(self, loadings, topics):
        """The fitted rates where the counts are kept (all of them when dense)."""
        if self.dense:
            return loadings @ topics
        return np.einsum("ik,ik->i", loadings[self.rows], topics.T[self.columns])

    def ratio(self, loadings, topics):
        ratio = self.values / np.maximum(self.rates(loadings, topics), np.finfo(np.float64).tiny)
        if self.dense:
            return ratio
        matrix = self.matrix.copy()
        matrix.data = ratio
        return matrix

    def log_likelihood(self, loadings, topics):
        """The Poisson log-likelihood up to the counts' constant."""
        rates = np.maximum(self.rates(loadings, topics), np.finfo(np.float64).tiny)
        return float((self.values * np.log(rates)).sum() - loadings.sum(0) @ topics.sum(1))


def _factorise(counts, num_topics, prior_rate, iterations, rng):
    """One run of the multiplicative updates from a random start: ``(loadings, topics, log
    likelihood)``, the loadings ``(documents, topics)``, the topics ``(topics, words)``."""
    num_documents, vocabulary_size = counts.shape
    loadings = prior_rate * rng.uniform(0.5, 1.5, (num_documents, num_topics))
    # Each word's mean count shared evenly by the topics' mean loadings, perturbed.
    topics = rng.uniform(0.5, 1.5, (num_topics, vocabulary_size)) * (counts.word_means() / (num_topics * prior_rate))
    tiny = np.finfo(np.float64).tiny
    for _ in range(iterations):
        topics *= (counts.ratio(loadings, topics).T @ loadings).T / np.maximum(loadings.sum(0), tiny)[:, None]
        loadings *= (counts.ratio(loadings, topics) @ topics.T) / np.maximum(topics.sum(1), tiny)[None]
    return loadings, topics, counts.log_likelihood(loadings, topics)


def poisson_nmf(corpus, num_topics, prior_rate=3.0, restarts=10, iterations=200, max_documents=10_000, seed=0):
    r"""Topic rates :math:`\beta` (``(num_topics, vocabulary_size)``, float64) for the start of a
    ``PoissonTopicModel`` fit: the maximum-likelihood fit of the same model with continuous topic
    counts, :math:`x_{dv} \sim \mathrm{Poisson}(\sum_k w_{dk} \beta_{kv})`, the Poisson
    (Kullback-Leibler) non-negative matrix factorisation, by the multiplicative updates of Lee and
    Seung,

    .. math:: \beta_{kv} \leftarrow \beta_{kv} \frac{\sum_d w_{dk} x_{dv} / \hat x_{dv}}{\sum_d w_{dk}},
              \qquad
              w_{dk} \leftarrow w_{dk} \frac{\sum_v \beta_{kv} x_{dv} / \hat x_{dv}}{\sum_v \beta_{kv}},
              \qquad \hat x = w \beta,

    the best of ``restarts`` random starts by likelihood (one run can stop at a local optimum
    that merges two topics). A corpus of more than :data:`DENSE_ELEMENTS` documents × words stays
    sparse (only its stored counts are visited), and at most ``max_documents`` documents are used
    (a random sample of them in a larger corpus): the topics need no more, and the memory stays
    bounded. The cost is ``restarts × iterations`` products of the counts with the topics or the
    loadings: milliseconds for the synthetic corpora, a few minutes for the bundled news corpus
    with 10 topics (pass fewer ``restarts`` or ``max_documents`` there).

    The factorisation leaves each topic's scale free (:math:`w_{dk} \to c\,w_{dk}`,
    :math:`\beta_k \to \beta_k / c`); the model's prior fixes it: each topic is scaled so that
    its mean count over the documents is the prior's mean ``prior_rate``.

    :param corpus: a :class:`redge_core.corpus.Corpus` (the training documents).
    :param int num_topics: the number of topics.
    :param float prior_rate: the prior rate :math:`\lambda_0` of the topic counts.
    :param int restarts: the random starts.
    :param int iterations: the updates of each start.
    :param int max_documents: the most documents used.
    :param int seed: the seed of the NumPy generator of the starts and of the sample of documents.

    **References:** Lee and Seung, *Algorithms for non-negative matrix factorization*, NIPS 2001;
    Cemgil, *Bayesian inference for nonnegative matrix factorisation models*, Computational
    Intelligence and Neuroscience 2009.
    """
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a redge_core.corpus.Corpus, got {type(corpus).__name__}")
    check_positive_integer("num_topics", num_topics)
    check_positive("prior_rate", prior_rate)
    for name, value in [("restarts", restarts), ("iterations", iterations), ("max_documents", max_documents)]:
        check_positive_integer(name, value)
    if not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if corpus.num_tokens == 0:
        raise ValueError("the corpus has no tokens: there are no topics to start from")
    rng = np.random.default_rng(seed)
    if corpus.num_documents > max_documents:
        corpus = corpus.subset(np.sort(rng.choice(corpus.num_documents, max_documents, replace=False)))
    counts = _Counts(corpus)
    runs = [_factorise(counts, num_topics, prior_rate, iterations, rng) for _ in range(restarts)]
    loadings, topics, _ = max(runs, key=lambda run: run[2])
    return topics * (loadings.mean(0) / prior_rate)[:, None]


def inverse_softplus(rates):
    """The unconstrained value of positive ``rates`` under softplus, :math:`\\log(e^r - 1)`,
    without overflow for large rates (float64)."""
    rates = np.asarray(rates, dtype=np.float64)
    return rates + np.log(-np.expm1(-rates))


def initial_topic_parameter(initial_topics, num_topics, vocabulary_size):
    """The unconstrained start of the topic-rate parameter (the topic rates are its softplus) from
    ``initial_topics``, a ``(num_topics, vocabulary_size)`` array of non-negative, finite topic
    rates with a positive total per topic (e.g. from :func:`poisson_nmf`), floored at
    :data:`RATE_FLOOR` times the mean topic's total rate (float64); anything else is a
    ``ValueError`` naming ``initial_topics``."""
    rates = np.asarray(initial_topics, dtype=np.float64)
    if rates.shape != (num_topics, vocabulary_size):
        raise ValueError(
            f"initial_topics must have shape (num_topics, vocabulary_size) = ({num_topics}, {vocabulary_size}), "
            f"got {rates.shape}"
        )
    if not (np.isfinite(rates).all() and (rates >= 0).all() and (rates.sum(-1) > 0).all()):
        raise ValueError("initial_topics must be finite, non-negative topic rates with a positive total per topic")
    floor = RATE_FLOOR * rates.sum(-1).mean()
    return inverse_softplus(np.maximum(rates, floor))
