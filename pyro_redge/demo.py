"""The Pyro half of ``redge demo`` (the command is :func:`redge_core.cli.main`): LDA and the
discrete-code topic model fitted by SVI with ReinMax and with their baselines, summarised by
:func:`redge_core.reporting.summarise_fit`."""

import pyro

from pyro_redge.estimators import ReinMax
from pyro_redge.topic_models import LDA, DiscreteCodeTopicModel, fit
from redge_core.reporting import summarise_fit

HOST_NAME = "Pyro"


def topic_model_demo(train, held_out, num_topics, budgets, device="cpu", progress=True, data_parallel=False):
    """Fit LDA (ReinMax vs ``TraceEnum_ELBO``) and the discrete-code model (ReinMax vs
    ``TraceGraph_ELBO``) to ``train`` with Pyro; return one row per fit (see
    :func:`redge_core.reporting.summarise_fit`).

    :param train: the training :class:`~redge_core.corpus.Corpus`.
    :param held_out: the held-out corpus of the perplexity.
    :param int num_topics: LDA's number of topics.
    :param dict budgets: ``{"lda": (epochs, max_steps), "codes": (epochs, max_steps)}``,
        ``max_steps`` ``None`` for whole epochs.
    :param str device: the PyTorch device.
    :param bool progress: show a progress bar per fit.
    :param bool data_parallel: fit data-parallel (see ``fit``).
    """
    results = []
    # Validation off for speed, restored on exit (the tests run these models with it on).
    with pyro.validation_enabled(False):
        for name, make in [
            ("lda", lambda estimator: LDA(train.vocabulary_size, num_topics, estimator, device=device)),
            ("codes", lambda estimator: DiscreteCodeTopicModel(train.vocabulary_size, 4, 8, estimator, device=device)),
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
