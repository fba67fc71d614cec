"""The Pyro half of ``redge demo`` (the command is :func:`redge_core.cli.main`): LDA and the
discrete-code topic model fitted by SVI with ReinMax and with the baselines users know,
summarised by :func:`redge_core.reporting.summarise_fit`."""

import pyro

from pyro_redge.estimators import RLOO, ReinMax
from pyro_redge.topic_models import LDA, DiscreteCodeTopicModel, ProdLDA, fit
from redge_core.reporting import run_demo
from redge_core.topic_models import initial_topics

HOST_NAME = "Pyro"


def topic_model_demo(train, held_out, num_topics, budgets, device="cpu", progress=True, data_parallel=False):
    """Fit LDA (ReinMax vs exact enumeration by ``TraceEnum_ELBO``, both from the same k-means
    topics of ``train``) and the discrete-code model (ReinMax vs RLOO over 4 samples, the strongest
    REINFORCE, and vs ProdLDA, its continuous counterpart) to ``train`` with Pyro; return one row
    per fit (see :func:`redge_core.reporting.run_demo`).

    :param train: the training :class:`~redge_core.corpus.Corpus`.
    :param held_out: the held-out corpus of the perplexity.
    :param int num_topics: LDA's number of topics.
    :param dict budgets: ``{"lda": (epochs, max_steps, evaluate_every), "codes": (...), "prodlda": (...)}``;
        a model without a budget is not fitted (``redge demo --quick`` leaves ProdLDA out).
    :param str device: the PyTorch device.
    :param bool progress: show a progress bar per fit.
    :param bool data_parallel: fit data-parallel (see ``fit``).
    """
    topics = initial_topics(train, num_topics)
    vocabulary_size = train.vocabulary_size
    topic_models = {
        "lda": [
            LDA(vocabulary_size, num_topics, estimator, device=device, initial_topics=topics)
            for estimator in (ReinMax(), None)
        ],
        "codes": [
            DiscreteCodeTopicModel(vocabulary_size, 4, 8, estimator, device=device) for estimator in (ReinMax(), RLOO())
        ],
        "prodlda": [ProdLDA(vocabulary_size, 4 * 8, device=device)],
    }
    # Validation off for speed, restored on exit (the tests run these models with it on).
    with pyro.validation_enabled(False):
        return run_demo(HOST_NAME, topic_models, fit, train, held_out, budgets, progress, data_parallel)
