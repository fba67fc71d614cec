import pyro
import pyro.distributions as host
import torch
from pyro import poutine

from pyro_redge.distributions import OneHotCategorical
from pyro_redge.estimators import Estimator, ReinMax
from pyro_redge.topic_models.training import Batch, encoder
from redge_core.topic_models import HeldOutBound, check_arguments, describe


class LDA(HeldOutBound):
    r"""Latent Dirichlet allocation with a topic assignment per word,

    .. math:: \theta_d \sim \mathrm{Dir}(\alpha), \quad z_{dn} \sim \mathrm{Cat}(\theta_d), \quad
              w_{dn} \sim \mathrm{Cat}(\beta_{z_{dn}}),

    the topics :math:`\beta` a point estimate (``pyro.param``). The guide amortises the document
    topics, :math:`q(\theta_d) = \mathrm{Dir}(f(x_d))` from the document's counts (concentrations
    of at least 0.1: smaller ones draw topic weights that underflow to 0 even in float64, whose
    logarithm the assignments' logits need), and, unless the assignments are enumerated, gives
    each token a :class:`~pyro_redge.OneHotCategorical` with logits ``log θ_d + h[w_dn]`` (the
    sampled document topics plus a learned word table), sampled by ``estimator``.

    ``estimator=None`` marginalises the assignments exactly instead: the model's sites are
    enumerated in parallel (``TraceEnum_ELBO``) and the guide has no assignment sites.

    **References:** Blei, Ng and Jordan, *Latent Dirichlet allocation*, JMLR 2003.

    :param int vocabulary_size: number of distinct words.
    :param int num_topics: number of topics :math:`K`.
    :param estimator: the gradient estimator of the assignments, or ``None`` for enumeration.
    :param float concentration: the symmetric Dirichlet prior :math:`\alpha`.
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
    ):
        check_arguments(
            estimator, Estimator, vocabulary_size=vocabulary_size, num_topics=num_topics, hidden_size=hidden_size
        )
        self.vocabulary_size, self.num_topics, self.estimator = vocabulary_size, num_topics, estimator
        self.concentration, self.device, self.dtype = concentration, device, dtype
        self.inference, self.label = describe("LDA", estimator, "enumeration")
        generator = torch.Generator().manual_seed(seed)
        self.initial_topic_logits = 0.5 * torch.randn(num_topics, vocabulary_size, generator=generator, dtype=dtype).to(
            device
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
