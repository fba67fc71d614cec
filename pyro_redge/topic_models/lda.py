import pyro
import pyro.distributions as host
import torch
from pyro import poutine

from pyro_redge.distributions import OneHotCategorical
from pyro_redge.estimators import Estimator, ReinMax
from pyro_redge.topic_models.training import Batch, encoder
from redge_core.topic_models import HeldOutBound, check_arguments, describe, initial_topic_logits


class LDA(HeldOutBound):
    r"""Latent Dirichlet allocation with a topic assignment per word,

    .. math:: \theta_d \sim \mathrm{Dir}(\alpha), \quad z_{dn} \sim \mathrm{Cat}(\theta_d), \quad
              w_{dn} \sim \mathrm{Cat}(\beta_{z_{dn}}),

    the topics :math:`\beta` a point estimate (``pyro.param``). The guide amortises the document
    topics, :math:`q(\theta_d) = \mathrm{Dir}(f(x_d))` from the document's counts (concentrations
    of at least 0.1: smaller ones draw topic weights that underflow to 0 even in float64, whose
    logarithm the assignments' logits need), and, unless the assignments are enumerated, gives
    each token a :class:`~pyro_redge.OneHotCategorical` sampled by ``estimator``, with logits

    .. math:: \log \theta_{dk} + \log \beta_{k w_{dn}} + h_{w_{dn} k},

    at :math:`h = 0` the exact conditional posterior :math:`p(z_{dn} \mid \theta_d, w_{dn}, \beta)`
    under the current topics (the topics are shared by model and guide), :math:`h` a learned
    correction per word, starting at 0.

    Topics start from ``initial_topics`` when given: with :func:`redge_core.topic_models.initial_topics`
    (k-means clusters of the training documents) both the topics and, through the guide above, the
    assignments start from the data; from random topics, every topic starts near the corpus's
    average and they separate slowly. Measured in Pyro on the bundled news corpus (20 topics, 8
    epochs), ReinMax's held-out perplexity: 1 272 from random topics with the guide's logits
    ``log θ + h`` (this class before 0.2.0), 1 067 from the clusters with the logits above, where exact
    enumeration reaches 1 066 from the clusters.

    ``estimator=None`` marginalises the assignments exactly instead: the model's sites are
    enumerated in parallel (``TraceEnum_ELBO``) and the guide has no assignment sites.

    **References:** Blei, Ng and Jordan, *Latent Dirichlet allocation*, JMLR 2003.

    :param int vocabulary_size: number of distinct words.
    :param int num_topics: number of topics :math:`K`.
    :param estimator: the gradient estimator of the assignments, or ``None`` for enumeration.
    :param float concentration: the symmetric Dirichlet prior :math:`\alpha`.
    :param initial_topics: ``(num_topics, vocabulary_size)`` positive topic-word weights to start
        from (normalised per topic), or ``None`` for random topics (normal logits of scale 0.5
        from ``seed``).
    """

    def __init__(
        self,
        vocabulary_size,
        num_topics=20,
        estimator=ReinMax(),
        concentration=0.5,
        hidden_size=100,
        device="cpu",
        dtype=torch.float64,
        seed=0,
        initial_topics=None,
    ):
        check_arguments(
            estimator, Estimator, vocabulary_size=vocabulary_size, num_topics=num_topics, hidden_size=hidden_size
        )
        self.vocabulary_size, self.num_topics, self.estimator = vocabulary_size, num_topics, estimator
        self.concentration, self.device, self.dtype = concentration, device, dtype
        self.inference, self.label = describe("LDA", estimator, "enumeration")
        self.initial_topic_logits = torch.as_tensor(
            initial_topic_logits(initial_topics, num_topics, vocabulary_size, seed, 0.5), dtype=dtype, device=device
        )
        self.encoder = encoder(vocabulary_size, hidden_size, num_topics, seed).to(device=device, dtype=dtype)

    def topic_log_probs(self):
        return pyro.param("lda.topic_logits", self.initial_topic_logits).log_softmax(-1)

    def model(self, batch):
        log_topics = self.topic_log_probs()
        prior = torch.full((self.num_topics,), self.concentration, dtype=self.dtype, device=self.device)
        with poutine.scale(scale=batch.scale):
            with pyro.plate("documents", len(batch.bag_of_words)):
                document_topics = pyro.sample("document_topics", host.Dirichlet(prior))
            with pyro.plate("tokens", batch.num_tokens):
                token_topics = document_topics[batch.document_of_token]
                if self.estimator is None:
                    assignment = pyro.sample(
                        "assignments", host.OneHotCategorical(probs=token_topics), infer={"enumerate": "parallel"}
                    )
                else:
                    assignment = pyro.sample(
                        "assignments", OneHotCategorical(probs=token_topics, estimator=self.estimator)
                    )
                # log p(w | z) = z · log β[:, w] is linear in the one-hot assignment; a factor
                # avoids materialising a tokens × vocabulary matrix of word logits.
                pyro.factor("words", (assignment * log_topics.T[batch.word_of_token]).sum(-1))

    def _concentration(self, bag_of_words):
        return torch.nn.functional.softplus(self.encoder(bag_of_words.log1p())) + 0.1

    def guide(self, batch):
        pyro.module("lda.encoder", self.encoder)
        concentration = self._concentration(batch.bag_of_words)
        with poutine.scale(scale=batch.scale):
            with pyro.plate("documents", len(batch.bag_of_words)):
                document_topics = pyro.sample("document_topics", host.Dirichlet(concentration))
            if self.estimator is not None:
                word_logits = pyro.param(
                    "lda.word_logits",
                    torch.zeros(self.vocabulary_size, self.num_topics, dtype=self.dtype, device=self.device),
                )
                word_logits = word_logits + self.topic_log_probs().T
                with pyro.plate("tokens", batch.num_tokens):
                    logits = document_topics.log()[batch.document_of_token] + word_logits[batch.word_of_token]
                    pyro.sample("assignments", OneHotCategorical(logits=logits, estimator=self.estimator))

    def topics(self):
        """``(topics, words)`` topic-word probabilities :math:`\\beta`."""
        return self.topic_log_probs().exp().detach().cpu().numpy()

    @torch.no_grad()
    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound per token on ``corpus`` with the assignments marginalised
        exactly, :math:`E_{q(\theta)}[\sum_n \log \sum_k \theta_k \beta_{k w_n}] - \mathrm{KL}(q(\theta) \| p(\theta))`
        by ``num_samples`` draws of :math:`\theta` (``-log`` of the held-out perplexity)."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            batch = Batch.from_corpus(corpus, range(corpus.num_documents), 1.0, self.device, self.dtype)
            concentration = self._concentration(batch.bag_of_words)
            posterior = host.Dirichlet(concentration)
            prior = host.Dirichlet(torch.full_like(concentration, self.concentration))
            theta = posterior.rsample((num_samples,))
            token_log_probs = torch.logsumexp(
                theta.log()[:, batch.document_of_token] + self.topic_log_probs().T[batch.word_of_token], -1
            )
            bound = token_log_probs.sum(-1).mean() - torch.distributions.kl_divergence(posterior, prior).sum()
            return float(bound)
        finally:
            torch.random.set_rng_state(generator_state)
