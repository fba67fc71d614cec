import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
from numpyro import handlers

from numpyro_redge.distributions import Poisson
from numpyro_redge.estimators import Estimator, ReinMax
from numpyro_redge.topic_models.training import Batch, Encoder, check_precision
from redge_core.topic_models import HeldOutBound, check_arguments, describe


class PoissonTopicModel(HeldOutBound):
    r"""Poisson factorisation with integer topic counts: document ``d`` holds :math:`n_{dk}`
    units of topic ``k``, each unit emitting on average :math:`\beta_{kv}` occurrences of word
    ``v``,

    .. math:: n_{dk} \sim \mathrm{Poisson}(\lambda_0), \quad
              x_{dv} \sim \mathrm{Poisson}\big(\textstyle\sum_k n_{dk} \beta_{kv} + \epsilon_v\big),

    :math:`\beta \ge 0` and the background rate :math:`\epsilon` point estimates. The guide is an
    amortised :class:`~numpyro_redge.Poisson` per document and topic, on the truncated support
    ``0..truncation`` (static, as ``jit`` requires; the prior is truncated at the same point, so
    its ``log_prob`` is the exact renormalised pmf): the generalized Gumbel-softmax of Joo et al.
    with any of our estimators.

    ``estimator=None`` uses NumPyro's own ``Poisson`` (unbounded) in model and guide, for
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
        dtype=jnp.float32,
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
        self.prior_rate, self.truncation = prior_rate, truncation
        self.dtype = check_precision(dtype, "PoissonTopicModel")
        self.inference, self.label = describe("Poisson", estimator, "reinforce")
        self.initial_topic_rates = jnp.asarray(
            0.1 * np.random.default_rng(seed).standard_normal((num_topics, vocabulary_size)) - 3.0, dtype
        )
        self.encoder = Encoder("poisson.encoder", vocabulary_size, hidden_size, num_topics, seed, dtype)
        self.params = None

    def _counts(self, rate):
        if self.estimator is None:
            return host.Poisson(rate)
        return Poisson(rate, estimator=self.estimator, truncation=self.truncation)

    def topic_rates(self, params=None):
        raw = (
            numpyro.param("poisson.topic_rates", self.initial_topic_rates)
            if params is None
            else params["poisson.topic_rates"]
        )
        return jax.nn.softplus(raw)

    def _word_rates(self, topic_counts, params=None):
        initial = jnp.full((self.vocabulary_size,), -5.0, dtype=self.dtype)
        background = numpyro.param("poisson.background", initial) if params is None else params["poisson.background"]
        return topic_counts @ self.topic_rates(params) + jax.nn.softplus(background)

    def model(self, batch):
        check_precision(self.dtype, "PoissonTopicModel")  # again where it runs: x64 may be off now
        prior = jnp.full((self.num_topics,), self.prior_rate, dtype=self.dtype)
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            topic_counts = numpyro.sample("topic_counts", self._counts(prior).to_event(1))
            numpyro.sample("words", host.Poisson(self._word_rates(topic_counts)).to_event(1), obs=batch.bag_of_words)

    def _rates(self, bag_of_words, params=None):
        return jax.nn.softplus(self.encoder(bag_of_words, params)) + 1e-3

    def guide(self, batch):
        rates = self._rates(batch.bag_of_words)
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            numpyro.sample("topic_counts", self._counts(rates).to_event(1))

    def topics(self):
        """``(topics, words)``: each topic's word rates of the fitted ``params``, normalised."""
        rates = self.topic_rates(self.params)
        return np.asarray(rates / rates.sum(-1, keepdims=True))

    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound of the count model per token on ``corpus``,
        :math:`(E_q[\log p(x \mid n)] - \mathrm{KL}(q(n) \| p(n))) / \sum_{dv} x_{dv}`, by
        ``num_samples`` draws (Poisson likelihood: not comparable with the perplexity of the
        word-sequence models)."""
        batch = Batch.from_corpus(corpus, np.arange(corpus.num_documents), dtype=self.dtype)
        return float(_poisson_bound(self, self.params, batch, num_samples, seed))


# Compiled once per model, shape and number of samples (the seed is traced): a held-out evaluation
# calls it once per chunk of documents.
@functools.partial(jax.jit, static_argnums=(0, 3))
def _poisson_bound(model, params, batch, num_samples, seed):
    rates = model._rates(batch.bag_of_words, params)
    posterior, prior = model._counts(rates), model._counts(jnp.full_like(rates, model.prior_rate))
    counts = posterior.sample(jax.random.PRNGKey(seed), (num_samples,))
    log_likelihood = host.Poisson(model._word_rates(counts, params)).log_prob(batch.bag_of_words).sum(-1).mean(0).sum()
    kl = (posterior.log_prob(counts) - prior.log_prob(counts)).sum(-1).mean(0).sum()
    return log_likelihood - kl
