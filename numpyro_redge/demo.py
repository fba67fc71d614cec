"""The NumPyro half of ``redge demo`` (the command is :func:`redge_core.cli.main`): the same
topic models, estimators and budgets as :mod:`pyro_redge.demo`, fitted by jitted NumPyro SVI on
JAX's default device, summarised by :func:`redge_core.reporting.summarise_fit`."""

import jax

from numpyro_redge.estimators import ReinMax
from numpyro_redge.topic_models import LDA, DiscreteCodeTopicModel, fit
from redge_core.reporting import summarise_fit

HOST_NAME = "NumPyro"


def topic_model_demo(train, held_out, num_topics, budgets, device=None, progress=True, data_parallel=False):
    """Fit LDA (ReinMax vs ``TraceEnum_ELBO``, which needs funsor) and the discrete-code model
    (ReinMax vs ``TraceGraph_ELBO``) to ``train`` with NumPyro; return one row per fit (see
    :func:`redge_core.reporting.summarise_fit`).

    :param train: the training :class:`~redge_core.corpus.Corpus`.
    :param held_out: the held-out corpus of the perplexity.
    :param int num_topics: LDA's number of topics.
    :param dict budgets: ``{"lda": (epochs, max_steps), "codes": (epochs, max_steps)}``,
        ``max_steps`` ``None`` for whole epochs.
    :param device: ignored (JAX computes on its default device); accepted so that both hosts'
        demos take the same arguments.
    :param bool progress: show a progress bar per fit.
    :param bool data_parallel: fit data-parallel (see ``fit``).
    """
    results = []
    # LDA computes in float64 (see LDA); x64 is restored on exit.
    with jax.enable_x64(True):
        for name, make in [
            ("lda", lambda estimator: LDA(train.vocabulary_size, num_topics, estimator)),
            ("codes", lambda estimator: DiscreteCodeTopicModel(train.vocabulary_size, 4, 8, estimator)),
        ]:
            for estimator in (ReinMax(), None):
                topic_model = make(estimator)
                epochs, max_steps = budgets[name]
                history = fit(
                    topic_model,
                    train,
                    epochs=epochs,
                    learning_rate=0.01,
                    held_out=held_out,
                    progress=progress,
                    max_steps=max_steps,
                    data_parallel=data_parallel,
                )
                results.append(summarise_fit(HOST_NAME, name, topic_model, history, train))
    return results
