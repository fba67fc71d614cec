import pyro
import pyro.distributions as host
import torch
from pyro import poutine

from pyro_redge.distributions import Poisson
from pyro_redge.estimators import Estimator, ReinMax
from pyro_redge.topic_models.training import Batch, encoder
from redge_core.topic_models import HeldOutBound, check_arguments, describe


class PoissonTopicModel(HeldOutBound):
    r"""Poisson factorisation with integer topic counts: document ``d`` holds :math:`n_{dk}`
    units of topic ``k``, each unit emitting on average :math:`\beta_{kv}` occurrences of word
    ``v``,

    .. math:: n_{dk} \sim \mathrm{Poisson}(\lambda_0), \quad
              x_{dv} \sim \mathrm{Poisson}\big(\textstyle\sum_k n_{dk} \beta_{kv} + \epsilon_v\big),

    :math:`\beta \ge 0` and the background rate :math:`\epsilon` point estimates. The guide is an
    amortised :class:`~pyro_redge.Poisson` per document and topic, on the truncated support
    ``0..truncation`` (the prior is truncated at the same point, so its ``log_prob`` is the exact
    renormalised pmf): the generalized Gumbel-softmax of Joo et al. with any of our estimators.

    ``estimator=None`` uses Pyro's own ``Poisson`` (unbounded) in model and guide, for
    ``TraceGraph_ELBO`` (REINFORCE).

    **References:** Joo, Kim, Shin, Yang and Moon, *Generalized Gumbel-softmax gradient
    estimator for generic discrete random variables*, 2020; Gopalan, Hofman and Blei, *Scalable
    recommendation with hierarchical Poisson factorization*, UAI 2015.
    """

    def __init__(
        self,
        vocabulary_size,
        num_topics=10,
        estimator=ReinMax(),
        prior_rate=3.0,
        truncation=30,
        hidden_size=100,
        device="cpu",
        dtype=torch.float32,
        seed=0,
    ):
        check_arguments(
            estimator,
            Estimator,
            vocabulary_size=vocabulary_size,
            num_topics=num_topics,
            truncation=truncation,
            hidden_size=hidden_size,
        )
        self.vocabulary_size, self.num_topics, self.estimator = vocabulary_size, num_topics, estimator
        self.prior_rate, self.truncation, self.device, self.dtype = prior_rate, truncation, device, dtype
        self.inference, self.label = describe("Poisson", estimator, "reinforce")
        generator = torch.Generator().manual_seed(seed)
        self.initial_topic_rates = (
            0.1 * torch.randn(num_topics, vocabulary_size, generator=generator, dtype=dtype) - 3.0
        ).to(device)
        self.encoder = encoder(vocabulary_size, hidden_size, num_topics, seed).to(device=device, dtype=dtype)

    def _counts(self, rate):
        if self.estimator is None:
            return host.Poisson(rate)
        return Poisson(rate, estimator=self.estimator, truncation=self.truncation)

    def topic_rates(self):
        return torch.nn.functional.softplus(pyro.param("poisson.topic_rates", self.initial_topic_rates))

    def _word_rates(self, topic_counts):
        background = torch.nn.functional.softplus(
            pyro.param(
                "poisson.background", torch.full((self.vocabulary_size,), -5.0, dtype=self.dtype, device=self.device)
            )
        )
        return topic_counts @ self.topic_rates() + background

    def model(self, batch):
        prior = torch.full((self.num_topics,), self.prior_rate, dtype=self.dtype, device=self.device)
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            topic_counts = pyro.sample("topic_counts", self._counts(prior).to_event(1))
            pyro.sample("words", host.Poisson(self._word_rates(topic_counts)).to_event(1), obs=batch.bag_of_words)

    def _rates(self, bag_of_words):
        return torch.nn.functional.softplus(self.encoder(bag_of_words.log1p())) + 1e-3

    def guide(self, batch):
        pyro.module("poisson.encoder", self.encoder)
        rates = self._rates(batch.bag_of_words)
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            pyro.sample("topic_counts", self._counts(rates).to_event(1))

    def topics(self):
        """``(topics, words)``: each topic's word rates, normalised to a distribution."""
        rates = self.topic_rates().detach()
        return (rates / rates.sum(-1, keepdim=True)).cpu().numpy()

    @torch.no_grad()
    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound of the count model per token on ``corpus``,
        :math:`(E_q[\log p(x \mid n)] - \mathrm{KL}(q(n) \| p(n))) / \sum_{dv} x_{dv}`, by
        ``num_samples`` draws (Poisson likelihood: not comparable with the perplexity of the
        word-sequence models)."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            batch = Batch.from_corpus(corpus, range(corpus.num_documents), 1.0, self.device, self.dtype)
            rates = self._rates(batch.bag_of_words)
            posterior, prior = self._counts(rates), self._counts(torch.full_like(rates, self.prior_rate))
            counts = posterior.sample((num_samples,))
            log_likelihood = host.Poisson(self._word_rates(counts)).log_prob(batch.bag_of_words).sum(-1).mean(0).sum()
            kl = (posterior.log_prob(counts) - prior.log_prob(counts)).sum(-1).mean(0).sum()
            return float(log_likelihood - kl)
        finally:
            torch.random.set_rng_state(generator_state)
