"""Topic models over discrete latent variables, fitted by SVI with our estimators, by exact
enumeration (``TraceEnum_ELBO``) or by REINFORCE (``TraceGraph_ELBO``) from the same code:

- :class:`LDA`: word-level topic assignments as :class:`~pyro_redge.OneHotCategorical`, an
  amortised Dirichlet guide for the document topics;
- :class:`DiscreteCodeTopicModel`: several categorical codes per document, decoded jointly by a
  network (a product of experts), so that enumeration is out of reach;
- :class:`ProdLDA`: continuous (logistic-normal) topic proportions with the discrete-code
  model's decoder, the baseline users know from Pyro's ProdLDA tutorial;
- :class:`PoissonTopicModel`: integer topic counts per document (Poisson factorisation), each
  count a one-hot over its truncated window sampled by our estimators, started from a Poisson
  NMF of the corpus (:func:`redge_core.poisson_topics.poisson_nmf`).

:func:`fit` runs the training loop with a progress bar; corpora and metrics come from
:mod:`redge_core.corpus`.
"""

from pyro_redge.topic_models.discrete_codes import DiscreteCodeTopicModel
from pyro_redge.topic_models.lda import LDA
from pyro_redge.topic_models.poisson_counts import PoissonTopicModel
from pyro_redge.topic_models.prodlda import ProdLDA
from pyro_redge.topic_models.training import Batch, fit

__all__ = ["Batch", "DiscreteCodeTopicModel", "LDA", "PoissonTopicModel", "ProdLDA", "fit"]
