import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as host
from jax.scipy.special import xlogy
from numpyro import handlers

from numpyro_redge.distributions import OneHotCategorical
from numpyro_redge.estimators import Estimator, ReinMax
from numpyro_redge.topic_models.training import Batch, Encoder, check_precision
from redge_core.topic_models import HeldOutBound, check_arguments, describe


class DiscreteCodeTopicModel(HeldOutBound):
    r"""A neural topic model whose documents carry ``num_codes`` categorical codes of
    ``code_size`` values each, decoded jointly into one word distribution (a product of experts:
    each code's value picks a row of its codebook, the rows add up in logit space),

    .. math:: c_{dm} \sim \mathrm{Cat}(1/C), \quad x_d \sim \mathrm{Mult}\Big(N_d,\
              \mathrm{softmax}\big(b + \textstyle\sum_m E_m c_{dm}\big)\Big).

    The codes interact through the softmax, so exact marginalisation costs ``code_size **
    num_codes`` decoder passes per document: out of reach for enumeration, the setting where
    pathwise estimators compete with REINFORCE. The guide is amortised: an encoder gives the
    logits of a :class:`~numpyro_redge.OneHotCategorical` per code.

    ``estimator=None`` samples NumPyro's own ``Categorical`` (integer codes, one-hot encoded for
    the decoder) in model and guide, for ``TraceGraph_ELBO`` (REINFORCE): NumPyro has no
    non-reparameterized one-hot categorical. The "topics" are the ``num_codes * code_size``
    codebook rows.

    **References:** Srivastava and Sutton, *Autoencoding variational inference for topic models*,
    ICLR 2017 (ProdLDA, the product-of-experts decoder, here with discrete codes).
    """

    #: ``fit`` gives the model the counts only, no token lists (see ``plan_batch``).
    reads_tokens = False

    def __init__(
        self, vocabulary_size, num_codes=4, code_size=8, estimator=ReinMax(), hidden_size=100, dtype=jnp.float32, seed=0
    ):
        check_arguments(
            estimator,
            Estimator,
            vocabulary_size=vocabulary_size,
            num_codes=num_codes,
            code_size=code_size,
            hidden_size=hidden_size,
        )
        self.vocabulary_size, self.num_codes, self.code_size, self.estimator = (
            vocabulary_size,
            num_codes,
            code_size,
            estimator,
        )
        self.dtype = check_precision(dtype, "DiscreteCodeTopicModel")
        self.inference, self.label = describe("codes", estimator, "reinforce")
        self.initial_codebooks = jnp.asarray(
            0.1 * np.random.default_rng(seed).standard_normal((num_codes, code_size, vocabulary_size)), dtype
        )
        self.encoder = Encoder("codes.encoder", vocabulary_size, hidden_size, num_codes * code_size, seed, dtype)
        self.params = None

    def _decoder(self, params=None):
        if params is not None:
            return params["codes.codebooks"], params["codes.bias"]
        return numpyro.param("codes.codebooks", self.initial_codebooks), numpyro.param(
            "codes.bias", jnp.zeros(self.vocabulary_size, dtype=self.dtype)
        )

    def word_log_probs(self, codes, params=None):
        """``(..., words)`` log-probabilities of the words given one-hot ``codes`` ``(..., M, C)``."""
        codebooks, bias = self._decoder(params)
        return jax.nn.log_softmax(bias + jnp.einsum("...mc,mcv->...v", codes, codebooks), -1)

    def _codes(self, logits):
        if self.estimator is None:
            return host.Categorical(logits=logits).to_event(1)
        return OneHotCategorical(logits=logits, estimator=self.estimator).to_event(1)

    def model(self, batch):
        check_precision(self.dtype, "DiscreteCodeTopicModel")  # again where it runs: x64 may be off now
        uniform = jnp.zeros((self.num_codes, self.code_size), dtype=self.dtype)
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            codes = numpyro.sample("codes", self._codes(uniform))
            if self.estimator is None:
                codes = jax.nn.one_hot(codes, self.code_size, dtype=self.dtype)
            totals = batch.bag_of_words.sum(-1)
            numpyro.sample("words", host.Multinomial(totals, logits=self.word_log_probs(codes)), obs=batch.bag_of_words)

    def _code_logits(self, bag_of_words, params=None):
        return self.encoder(bag_of_words, params).reshape(*bag_of_words.shape[:-1], self.num_codes, self.code_size)

    def guide(self, batch):
        logits = self._code_logits(batch.bag_of_words)
        with (
            handlers.scale(scale=batch.scale),
            numpyro.plate("documents", len(batch.bag_of_words)),
            handlers.mask(mask=batch.document_mask),
        ):
            numpyro.sample("codes", self._codes(logits))

    def topics(self):
        """``(num_codes * code_size, words)``: the word distribution of each codebook row on its
        own, ``softmax(b + E_m[c])``, of the fitted ``params``."""
        codebooks, bias = self._decoder(self.params)
        return np.asarray(jax.nn.softmax(bias + codebooks, -1)).reshape(-1, self.vocabulary_size)

    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound per token on ``corpus`` (the word sequence's likelihood,
        without the multinomial coefficient, as for :class:`LDA`):
        :math:`E_q[\sum_v x_v \log p_v(c)] - \mathrm{KL}(q(c) \| p(c))` by ``num_samples`` draws."""
        batch = Batch.from_corpus(corpus, np.arange(corpus.num_documents), dtype=self.dtype)
        return float(_codes_bound(self, self.params, batch, num_samples, seed))


# Compiled once per model, shape and number of samples (the seed is traced): a held-out evaluation
# calls it once per chunk of documents.
@functools.partial(jax.jit, static_argnums=(0, 3))
def _codes_bound(model, params, batch, num_samples, seed):
    logits = model._code_logits(batch.bag_of_words, params)
    codes = jax.nn.one_hot(
        host.Categorical(logits=logits).sample(jax.random.PRNGKey(seed), (num_samples,)),
        model.code_size,
        dtype=model.dtype,
    )
    log_likelihood = (batch.bag_of_words * model.word_log_probs(codes, params)).sum(-1).mean(0).sum()
    probs = jax.nn.softmax(logits, -1)
    kl = (xlogy(probs, probs).sum(-1) + jnp.log(model.code_size)).sum()
    return log_likelihood - kl
