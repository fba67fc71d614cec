"""The NumPyro half of ``redge demo`` (the command is :func:`redge_core.cli.main`): the same
topic models, estimators and budgets as :mod:`pyro_redge.demo`, fitted by jitted NumPyro SVI on
JAX's default device, summarised by :func:`redge_core.reporting.summarise_fit`."""

import jax

from numpyro_redge.estimators import RLOO, ReinMax
from numpyro_redge.topic_models import LDA, DiscreteCodeTopicModel, ProdLDA, fit
from redge_core.reporting import run_demo
from redge_core.topic_models import initial_topics

HOST_NAME = "NumPyro"


def topic_model_demo(train, held_out, num_topics, budgets, device=None, progress=True, data_parallel=False):
    """Fit LDA (ReinMax vs exact enumeration by ``TraceEnum_ELBO``, which needs funsor, both from
    the same k-means topics of ``train``) and the discrete-code model (ReinMax vs RLOO over 4
    samples, the strongest REINFORCE, and vs ProdLDA, its continuous counterpart) to ``train``
    with NumPyro; return one row per fit (see :func:`redge_core.reporting.run_demo`).

    :param train: the training :class:`~redge_core.corpus.Corpus`.
    :param held_out: the held-out corpus of the perplexity.
    :param int num_topics: LDA's number of topics.
    :param dict budgets: ``{"lda": (epochs, max_steps, evaluate_every), "codes": (...), "prodlda": (...)}``;
        a model without a budget is not fitted (``redge demo --quick`` leaves ProdLDA out).
    :param device: ignored (JAX computes on its default device); accepted so that both hosts'
        demos take the same arguments.
    :param bool progress: show a progress bar per fit.
    :param bool data_parallel: fit data-parallel (see ``fit``).
    """
    topics = initial_topics(train, num_topics)
    vocabulary_size = train.vocabulary_size
    # LDA computes in float64 (see LDA); x64 is restored on exit.
    with jax.enable_x64(True):
        topic_models = {
            "lda": [
                LDA(vocabulary_size, num_topics, estimator, initial_topics=topics) for estimator in (ReinMax(), None)
            ],
            "codes": [DiscreteCodeTopicModel(vocabulary_size, 4, 8, estimator) for estimator in (ReinMax(), RLOO())],
            "prodlda": [ProdLDA(vocabulary_size, 4 * 8)],
        }
        return run_demo(HOST_NAME, topic_models, fit, train, held_out, budgets, progress, data_parallel)
