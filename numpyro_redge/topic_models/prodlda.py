import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
from numpyro import handlers

from numpyro_redge.topic_models.training import Batch, Encoder, check_precision
from redge_core.checks import check_positive_integer
from redge_core.topic_models import PRODLDA_LABEL, HeldOutBound, initial_topic_logits, prodlda_prior_scale


class ProdLDA(HeldOutBound):
    r"""ProdLDA, the continuous baseline of the discrete-code model: each document has
    logistic-normal topic proportions, decoded by the same product of experts,

    .. math:: z_d \sim \mathcal N(0, \sigma^2 I_K), \quad \theta_d = \mathrm{softmax}(z_d), \quad
              x_d \sim \mathrm{Mult}\big(N_d,\ \mathrm{softmax}(b + \theta_d^\top \beta)\big),

    the prior the Laplace approximation (in the softmax basis) of a symmetric Dirichlet of
    concentration :math:`\alpha`, :math:`\sigma^2 = (1 - 1/K)/\alpha`, as in the ProdLDA paper,

    fitted by reparameterized SVI (``Trace_ELBO``; no discrete latent, no estimator) with an
    amortised guide :math:`q(z_d) = \mathcal N(\mu(x_d), \mathrm{diag}\,\sigma^2(x_d))` from the
    same encoder as the other topic models (log counts, one hidden layer; :math:`\sigma(x_d)` through a
    softplus, which keeps early steps from overflowing the scale). The decoder is the
    discrete-code model's with :math:`\theta_d` in place of the one-hot codes, and the "topics" are
    read the same way, :math:`\mathrm{softmax}(b + \beta_k)`. Pyro's ProdLDA tutorial adds dropout
    and batch normalisation to this model and a second hidden layer to the encoder; they are left
    out here so that the encoder budget equals the other models'.

    Example::

        >>> from redge_core.corpus import synthetic_code_corpus
        >>> from numpyro_redge.topic_models import ProdLDA, fit
        >>> corpus, _ = synthetic_code_corpus(num_documents=40, vocabulary_size=30)
        >>> topic_model = ProdLDA(corpus.vocabulary_size, num_topics=3)
        >>> history = fit(topic_model, corpus, epochs=2, batch_size=20, progress=False)
        >>> topic_model.topics().shape
        (3, 30)

    **References:** Srivastava and Sutton, *Autoencoding variational inference for topic models*,
    ICLR 2017.

    :param int vocabulary_size: number of distinct words.
    :param int num_topics: number of topics :math:`K`.
    :param float concentration: the Dirichlet concentration :math:`\alpha > 0` that the prior
        approximates (0.1: :math:`\sigma \approx 3.1` at 32 topics; with :math:`\alpha = 1`,
        :math:`\sigma \approx 1`, Pyro's tutorial prior, the topics of the bundled corpus stayed
        on the unigram plateau for 5 epochs and reached perplexity 1 264 after 12 where
        a prior scale of 3 (about :math:`\alpha = 0.1`'s) reached 1 173, measured in NumPyro).
    :param int hidden_size: the encoder's hidden units.
    """

    inference, label, estimator = "pathwise", PRODLDA_LABEL, None
    #: ``fit`` gives the model the counts only, no token lists (see ``plan_batch``).
    reads_tokens = False

    def __init__(self, vocabulary_size, num_topics=20, concentration=0.1, hidden_size=100, dtype=jnp.float32, seed=0):
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_topics", num_topics),
            ("hidden_size", hidden_size),
        ]:
            check_positive_integer(name, value)
        self.concentration = concentration
        self.prior_scale = prodlda_prior_scale(num_topics, concentration)
        self.vocabulary_size, self.num_topics = vocabulary_size, num_topics
        self.dtype = check_precision(dtype, "ProdLDA")
        self.initial_topic_weights = jnp.asarray(
            initial_topic_logits(None, num_topics, vocabulary_size, seed, 0.1), dtype
        )
        self.encoder = Encoder("prodlda.encoder", vocabulary_size, hidden_size, 2 * num_topics, seed, dtype)
        self.params = None

    def _decoder(self, params=None):
        if params is not None:
            return params["prodlda.topic_weights"], params["prodlda.bias"]
        return numpyro.param("prodlda.topic_weights", self.initial_topic_weights), numpyro.param(
            "prodlda.bias", jnp.zeros(self.vocabulary_size, dtype=self.dtype)
        )

    def word_log_probs(self, proportions, params=None):
        """``(..., words)`` log-probabilities of the words given topic proportions ``(..., K)``."""
        weights, bias = self._decoder(params)
        return jax.nn.log_softmax(bias + proportions @ weights, -1)

    def _prior(self, rows):
        return host.Normal(jnp.zeros((rows, self.num_topics), dtype=self.dtype), self.prior_scale).to_event(1)

    def model(self, batch):
        check_precision(self.dtype, "ProdLDA")  # again where it runs: x64 may be off now
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            logits = numpyro.sample("topic_logits", self._prior(len(batch.bag_of_words)))
            totals = batch.bag_of_words.sum(-1)
            numpyro.sample(
                "words",
                host.Multinomial(totals, logits=self.word_log_probs(jax.nn.softmax(logits, -1))),
                obs=batch.bag_of_words,
            )

    def _posterior(self, bag_of_words, params=None):
        location, scale = jnp.split(self.encoder(bag_of_words, params), 2, -1)
        return host.Normal(location, jax.nn.softplus(scale) + 1e-3).to_event(1)

    def guide(self, batch):
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            numpyro.sample("topic_logits", self._posterior(batch.bag_of_words))

    def topics(self):
        """``(topics, words)``: each topic's word distribution on its own, ``softmax(b + β_k)``,
        of the fitted ``params``."""
        weights, bias = self._decoder(self.params)
        return np.asarray(jax.nn.softmax(bias + weights, -1))

    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound per token on ``corpus`` (the word sequence's likelihood, as for
        the other topic models): :math:`E_q[\sum_v x_v \log p_v(\theta)] - \mathrm{KL}(q(z) \| p(z))`,
        the expectation by ``num_samples`` draws, the KL exact."""
        batch = Batch.from_corpus(corpus, np.arange(corpus.num_documents), dtype=self.dtype)
        return float(_prodlda_bound(self, self.params, batch, num_samples, seed))


# Compiled once per model, shape and number of samples (the seed is traced).
@functools.partial(jax.jit, static_argnums=(0, 3))
def _prodlda_bound(model, params, batch, num_samples, seed):
    posterior = model._posterior(batch.bag_of_words, params)
    proportions = jax.nn.softmax(posterior.sample(jax.random.PRNGKey(seed), (num_samples,)), -1)
    log_likelihood = (batch.bag_of_words * model.word_log_probs(proportions, params)).sum(-1).mean(0)
    kl = host.kl_divergence(posterior, model._prior(len(batch.bag_of_words)))
    return jnp.where(batch.document_mask, log_likelihood - kl, 0.0).sum()
