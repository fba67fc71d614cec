"""The backend-neutral half of ``pyro_redge.topic_models`` and ``numpyro_redge.topic_models``
(NumPy only): argument checks, labels, minibatch plans and the epoch loop of ``fit``. Each host
keeps only its models and the conversion of a :class:`BatchPlan` into its own arrays."""

import dataclasses
import numbers
import time

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from redge_core.checks import check_positive, check_positive_integer
from redge_core.corpus import document_chunks

# Token counts vary from batch to batch; a host that compiles per shape (JAX) pads them to a
# multiple of this, which keeps the number of shapes (hence of compilations) small.
TOKEN_BUCKET = 2048

# What fits a topic model when no estimator is given, and the host ELBO that does it.
BASELINES = {"enumeration": "TraceEnum_ELBO", "reinforce": "TraceGraph_ELBO"}

#: The label of ``ProdLDA`` (continuous topic proportions: fitted by the host's reparameterized
#: ``Trace_ELBO``, no estimator).
PRODLDA_LABEL = "ProdLDA[Trace_ELBO]"


def prodlda_prior_scale(num_topics, concentration):
    r"""The scale :math:`\sigma` of ``ProdLDA``'s prior :math:`\mathcal N(0, \sigma^2 I_K)` on the
    topic logits: the Laplace approximation (in the softmax basis) of a symmetric Dirichlet of
    concentration :math:`\alpha`, :math:`\sigma^2 = (1 - 1/K)/\alpha` (1 for a single topic, whose
    proportion is fixed). ``ValueError`` naming ``concentration`` unless it is positive."""
    check_positive("concentration", concentration)
    return float(np.sqrt((1 - 1 / num_topics) / concentration)) if num_topics > 1 else 1.0


def check_arguments(estimator, estimator_class, **sizes):
    """``ValueError`` naming the argument: ``estimator`` must be an instance of
    ``estimator_class`` (the host package's estimators) or ``None`` (the baseline), every size a
    positive integer.

    :param estimator: the estimator given to the topic model.
    :param type estimator_class: the host's estimator base class.
    :param sizes: the model's sizes by argument name.
    """
    if estimator is not None and not isinstance(estimator, estimator_class):
        package = estimator_class.__module__.split(".")[0]
        raise ValueError(
            f"estimator must be an estimator of {package}.estimators or None (the baseline), got {estimator!r}"
        )
    for name, value in sizes.items():
        check_positive_integer(name, value)


#: The particles of ``ScoreFunction_ELBO`` that fit a topic model whose estimator is a
#: score-function one (``RLOO``, ``DisARM``) when ``fit`` is not told otherwise: 4, the setting of
#: the estimators issue's RLOO (4 model evaluations per step).
SCORE_FUNCTION_PARTICLES = 4


def describe(model_name, estimator, baseline):
    """``(inference, label)`` of a topic model: ``"pathwise"`` with one of our pathwise estimators,
    ``"score_function"`` with a score-function one (``RLOO``, ``DisARM``: fitted by
    ``ScoreFunction_ELBO``), else ``baseline`` (a key of :data:`BASELINES`); the label names the
    model and what fits it, e.g. ``"LDA[ReinMax]"``, ``"codes[RLOO]"`` or ``"LDA[TraceEnum_ELBO]"``."""
    if estimator is None:
        return baseline, f"{model_name}[{BASELINES[baseline]}]"
    inference = "pathwise" if estimator.pathwise else "score_function"
    return inference, f"{model_name}[{type(estimator).__name__}]"


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """A minibatch of documents as NumPy arrays, before a host converts them: dense counts
    ``(batch_size, words)``, the flattened tokens, masks of the real documents and tokens (all
    true without padding), the ELBO's scale (documents in the corpus / real documents in the
    batch) and the number of real tokens."""

    bag_of_words: np.ndarray
    document_mask: np.ndarray
    document_of_token: np.ndarray
    word_of_token: np.ndarray
    token_mask: np.ndarray
    scale: float
    num_tokens: int


def plan_batch(corpus, documents, scale=1.0, batch_size=None, token_bucket=None, dtype=np.float32, tokens=True):
    """The :class:`BatchPlan` of ``documents`` of ``corpus``.

    :param documents: indices of the documents.
    :param float scale: the ELBO's scale of the batch.
    :param int batch_size: pad the documents to this many rows (``None``: no padding).
    :param int token_bucket: pad the tokens to a multiple of this (``None``: no padding).
    :param dtype: the dtype of the counts.
    :param bool tokens: list the tokens; ``False`` leaves the token arrays empty (``num_tokens``
        still counts them) for a model that reads only the counts, so that a host compiling per
        shape does not compile again for every token count.
    """
    documents = np.asarray(documents)
    real_documents = len(documents)
    batch_size = real_documents if batch_size is None else batch_size
    if batch_size < real_documents:
        raise ValueError(f"batch_size must be at least the number of documents ({real_documents}), got {batch_size!r}")
    bag_of_words = np.zeros((batch_size, corpus.vocabulary_size), dtype=dtype)
    bag_of_words[:real_documents] = corpus.bag_of_words(documents)
    if tokens:
        document_of_token, word_of_token = corpus.tokens(documents)
        num_tokens = len(word_of_token)
    else:
        document_of_token = word_of_token = np.zeros(0, np.int64)
        num_tokens = int(corpus.subset(documents).num_tokens)
    padded = (
        len(word_of_token)
        if token_bucket is None or not tokens
        else -(-max(num_tokens, 1) // token_bucket) * token_bucket
    )
    pad = padded - len(word_of_token)
    return BatchPlan(
        bag_of_words,
        np.arange(batch_size) < real_documents,
        np.pad(document_of_token, (0, pad)),
        np.pad(word_of_token, (0, pad)),
        np.arange(padded) < len(word_of_token),
        float(scale),
        num_tokens,
    )


def initial_topics(corpus, num_topics, seed=0, max_documents=4096, iterations=10, smoothing=0.1):
    r"""Topics to start a fit from, read off the documents: the pooled word counts of
    ``num_topics`` clusters of documents, smoothed and normalised,

    .. math:: \beta_k \propto \textstyle\sum_{d \in C_k} x_d + \epsilon,

    the clusters :math:`C_k` from k-means on the documents' word frequencies (k-means++ seeding,
    ``iterations`` Lloyd steps) over at most ``max_documents`` documents drawn at random, so that
    the cost does not grow with the corpus. A random start leaves every topic near the corpus's
    average, from which the topics separate slowly; clusters of documents already differ in the
    words they use.

    :param corpus: a :class:`redge_core.corpus.Corpus`.
    :param int num_topics: the number of topics :math:`K` (at most the documents used).
    :param int seed: seeds the sample of documents and the k-means++ seeding.
    :param int max_documents: the most documents clustered.
    :param int iterations: Lloyd iterations after the seeding.
    :param float smoothing: :math:`\epsilon`, counts added to every word of every topic (> 0, so
        that no word starts with probability 0).
    :returns: ``(num_topics, vocabulary_size)`` float64 word probabilities, rows summing to 1.

    **References:** Arthur and Vassilvitskii, *k-means++: the advantages of careful seeding*,
    SODA 2007.
    """
    for name, value in [("num_topics", num_topics), ("max_documents", max_documents), ("iterations", iterations)]:
        check_positive_integer(name, value)
    if not (isinstance(smoothing, numbers.Real) and smoothing > 0):
        raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
    rng = np.random.default_rng(seed)
    documents = np.arange(corpus.num_documents)
    if len(documents) > max_documents:
        documents = np.sort(rng.choice(len(documents), max_documents, replace=False))
    if num_topics > len(documents):
        raise ValueError(
            f"num_topics must be at most the number of documents clustered ({len(documents)}), got {num_topics!r}"
        )
    # Sparse rows: the cost follows the stored entries, not documents × vocabulary.
    counts = corpus.subset(documents).count_matrix()
    frequencies = sparse.diags(1.0 / np.maximum(np.asarray(counts.sum(-1)).ravel(), 1.0)) @ counts
    squared_norms = np.asarray(frequencies.multiply(frequencies).sum(-1)).ravel()

    def squared_distances(centres):
        return np.maximum(squared_norms[:, None] - 2 * (frequencies @ centres.T) + (centres**2).sum(-1), 0.0)

    def pooled(cluster, values):
        membership = sparse.csr_matrix(
            (np.ones(len(cluster)), (cluster, np.arange(len(cluster)))), shape=(num_topics, len(cluster))
        )
        return np.asarray((membership @ values).todense()), np.bincount(cluster, minlength=num_topics)

    centres = frequencies[[rng.integers(frequencies.shape[0])]].toarray()
    while len(centres) < num_topics:
        nearest = squared_distances(centres).min(-1)
        weights = nearest / nearest.sum() if nearest.sum() > 0 else None
        centres = np.vstack([centres, frequencies[[rng.choice(frequencies.shape[0], p=weights)]].toarray()])
    for _ in range(iterations):
        sums, sizes = pooled(squared_distances(centres).argmin(-1), frequencies)
        # An empty cluster keeps its centre.
        centres = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)
    pooled_counts = pooled(squared_distances(centres).argmin(-1), counts)[0] + smoothing
    return pooled_counts / pooled_counts.sum(-1, keepdims=True)


def initial_topic_logits(initial_topics, num_topics, vocabulary_size, seed, scale):
    """The starting topic logits of a topic model: ``log initial_topics`` (each row normalised)
    when given, else ``scale`` × standard normal noise from ``seed`` (NumPy, float64).

    :param initial_topics: ``None``, or ``(num_topics, vocabulary_size)`` positive topic-word
        weights, e.g. from :func:`initial_topics`; ``ValueError`` naming it otherwise.
    """
    if initial_topics is None:
        return scale * np.random.default_rng(seed).standard_normal((num_topics, vocabulary_size))
    weights = np.asarray(initial_topics, dtype=np.float64)
    if weights.shape != (num_topics, vocabulary_size):
        raise ValueError(
            f"initial_topics must have shape (num_topics, vocabulary_size) = ({num_topics}, {vocabulary_size}), "
            f"got {weights.shape}"
        )
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError("initial_topics must be finite and positive (a word of probability 0 has logit -inf)")
    return np.log(weights / weights.sum(-1, keepdims=True))


#: The largest number of elements (``num_samples × documents × vocabulary``) that one chunk of a
#: held-out evaluation holds: 2^24, 64 MiB in float32. The bundled corpus (372 held-out documents,
#: 2 000 words, 16 samples) is one chunk; 10^6 documents of 10^4 words are 10^4 chunks of 104.
HELD_OUT_CHUNK_ELEMENTS = 2**24


class HeldOutBound:
    """The held-out evaluation of both hosts' topic models, in chunks of documents so that its
    memory does not grow with the corpus: a model defines ``_held_out_bound(corpus, num_samples,
    seed) -> float``, the bound summed over the documents of ``corpus``, and ``vocabulary_size``."""

    def held_out_bound_per_token(self, corpus, num_samples=16, seed=0, chunk_documents=None):
        """The model's held-out bound (see ``_held_out_bound``) per token of ``corpus``, computed in
        chunks of ``chunk_documents`` documents (default: as many as keep ``num_samples ×
        documents × vocabulary`` within :data:`HELD_OUT_CHUNK_ELEMENTS`), the ``i``-th chunk with
        ``seed + i`` (one chunk: exactly the bound of the whole corpus with ``seed``)."""
        check_positive_integer("num_samples", num_samples)
        if chunk_documents is None:
            chunk_documents = max(1, HELD_OUT_CHUNK_ELEMENTS // (num_samples * self.vocabulary_size))
        check_positive_integer("chunk_documents", chunk_documents)
        if corpus.num_tokens == 0:
            raise ValueError("the held-out corpus has no tokens: its bound per token is undefined")
        total = 0.0
        for index, documents in enumerate(document_chunks(corpus.num_documents, chunk_documents)):
            total += self._held_out_bound(corpus.subset(documents), num_samples, seed + index)
        return total / corpus.num_tokens


def run_epochs(
    topic_model,
    corpus,
    step,
    epochs=10,
    batch_size=64,
    seed=0,
    held_out=None,
    progress=True,
    max_steps=None,
    end_of_epoch=None,
    total_loss=None,
    evaluate_every=None,
):
    """The epoch loop of both hosts' ``fit``: shuffles the documents of ``corpus`` each epoch
    (NumPy generator seeded by ``seed``), calls ``step(documents, scale) -> (loss, num_tokens)``
    for each minibatch (``loss`` the unscaled ELBO loss of the batch, a number or a scalar on the
    device), then ``end_of_epoch()`` if given, then, when ``held_out`` is given,
    ``topic_model.held_out_bound_per_token(held_out)``: at the end of every epoch, and also every
    ``evaluate_every`` steps when given (``end_of_epoch()`` is called before each evaluation, so
    that it sees the current parameters).

    The losses stay where ``step`` leaves them: ``total_loss(losses) -> float`` (default: the sum
    of their floats) reads their sum once per epoch, so that a step never waits for the device.

    Returns the history: per epoch, the training loss per token, the wall-clock seconds of its
    steps (evaluations excluded) and the steps taken; per evaluation, the held-out bound per token
    and the steps taken before it (``"held_out_steps"``); ``"whole_epochs"`` says whether every
    epoch went through the whole corpus (``max_steps`` stops early, for smoke runs and
    ``--quick``)."""
    optional = [("max_steps", max_steps), ("evaluate_every", evaluate_every)]
    for name, value in [("epochs", epochs), ("batch_size", batch_size)] + [x for x in optional if x[1] is not None]:
        check_positive_integer(name, value)
    if not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    shuffler = np.random.default_rng(seed)
    history = {
        "epoch": [],
        "loss_per_token": [],
        "seconds": [],
        "steps": [],
        "held_out_bound_per_token": [],
        "held_out_steps": [],
    }
    history["whole_epochs"] = True
    steps = 0

    def evaluate():
        if end_of_epoch is not None:
            end_of_epoch()
        if held_out is not None:
            history["held_out_bound_per_token"].append(topic_model.held_out_bound_per_token(held_out))
            history["held_out_steps"].append(steps)

    bar = tqdm(range(epochs), desc=topic_model.label, disable=not progress, leave=False)
    for epoch in bar:
        order = shuffler.permutation(corpus.num_documents)
        start, losses, tokens, evaluating = time.perf_counter(), [], 0, 0.0
        for first in range(0, len(order), batch_size):
            documents = order[first : first + batch_size]
            step_loss, step_tokens = step(documents, corpus.num_documents / len(documents))
            losses.append(step_loss)
            tokens += step_tokens
            steps += 1
            stop = max_steps is not None and steps >= max_steps
            if stop:
                history["whole_epochs"] = history["whole_epochs"] and first + batch_size >= len(order)
            if held_out is not None and evaluate_every and steps % evaluate_every == 0:
                if not (stop or first + batch_size >= len(order)):  # the epoch's end evaluates anyway
                    began = time.perf_counter()
                    evaluate()
                    evaluating += time.perf_counter() - began
            if stop:
                break
        loss = total_loss(losses) if total_loss is not None else sum(float(value) for value in losses)
        history["epoch"].append(epoch + 1)
        history["seconds"].append(time.perf_counter() - start - evaluating)
        history["steps"].append(len(losses))
        history["loss_per_token"].append(loss / tokens)
        evaluate()
        bar.set_postfix(loss_per_token=f"{loss / tokens:.3f}")
        if max_steps is not None and steps >= max_steps:
            break
    return history
