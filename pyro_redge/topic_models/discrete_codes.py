import pyro
import pyro.distributions as host
import torch
from pyro import poutine

from pyro_redge.distributions import OneHotCategorical
from pyro_redge.estimators import Estimator, ReinMax
from pyro_redge.topic_models.training import Batch, encoder
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
    logits of a :class:`~pyro_redge.OneHotCategorical` per code.

    ``estimator=None`` uses Pyro's own ``OneHotCategorical`` in the guide, for
    ``TraceGraph_ELBO`` (REINFORCE). The "topics" are the ``num_codes * code_size`` codebook rows.

    **References:** Srivastava and Sutton, *Autoencoding variational inference for topic models*,
    ICLR 2017 (ProdLDA, the product-of-experts decoder, here with discrete codes).
    """

    def __init__(
        self,
        vocabulary_size,
        num_codes=4,
        code_size=8,
        estimator=ReinMax(),
        hidden_size=100,
        device="cpu",
        dtype=torch.float32,
        seed=0,
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
        self.device, self.dtype = device, dtype
        self.inference, self.label = describe("codes", estimator, "reinforce")
        generator = torch.Generator().manual_seed(seed)
        self.initial_codebooks = 0.1 * torch.randn(
            num_codes, code_size, vocabulary_size, generator=generator, dtype=dtype
        ).to(device)
        self.encoder = encoder(vocabulary_size, hidden_size, num_codes * code_size, seed).to(device=device, dtype=dtype)

    def _decoder(self):
        codebooks = pyro.param("codes.codebooks", self.initial_codebooks)
        bias = pyro.param("codes.bias", torch.zeros(self.vocabulary_size, dtype=self.dtype, device=self.device))
        return codebooks, bias

    def word_log_probs(self, codes):
        """``(..., words)`` log-probabilities of the words given one-hot ``codes`` ``(..., M, C)``."""
        codebooks, bias = self._decoder()
        return (bias + torch.einsum("...mc,mcv->...v", codes, codebooks)).log_softmax(-1)

    def model(self, batch):
        uniform = torch.zeros(self.num_codes, self.code_size, dtype=self.dtype, device=self.device)
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            if self.estimator is None:
                codes = pyro.sample("codes", host.OneHotCategorical(logits=uniform).to_event(1))
            else:
                codes = pyro.sample("codes", OneHotCategorical(logits=uniform, estimator=self.estimator).to_event(1))
            # torch's Multinomial.log_prob reads the counts themselves; total_count only matters
            # for sampling, so one bound for every document is enough (validation would insist on
            # the per-document total, which torch cannot take as a tensor).
            pyro.sample(
                "words",
                host.Multinomial(batch.longest_document, logits=self.word_log_probs(codes), validate_args=False),
                obs=batch.bag_of_words,
            )

    def _code_logits(self, bag_of_words):
        return self.encoder(bag_of_words.log1p()).unflatten(-1, (self.num_codes, self.code_size))

    def guide(self, batch):
        pyro.module("codes.encoder", self.encoder)
        logits = self._code_logits(batch.bag_of_words)
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            if self.estimator is None:
                pyro.sample("codes", host.OneHotCategorical(logits=logits).to_event(1))
            else:
                pyro.sample("codes", OneHotCategorical(logits=logits, estimator=self.estimator).to_event(1))

    def topics(self):
        """``(num_codes * code_size, words)``: the word distribution of each codebook row on its
        own, ``softmax(b + E_m[c])``."""
        codebooks, bias = self._decoder()
        return (bias + codebooks).softmax(-1).flatten(0, 1).detach().cpu().numpy()

    @torch.no_grad()
    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound per token on ``corpus`` (the word sequence's likelihood,
        without the multinomial coefficient, as for :class:`LDA`):
        :math:`E_q[\sum_v x_v \log p_v(c)] - \mathrm{KL}(q(c) \| p(c))` by ``num_samples`` draws."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            batch = Batch.from_corpus(corpus, range(corpus.num_documents), 1.0, self.device, self.dtype)
            posterior = host.OneHotCategorical(logits=self._code_logits(batch.bag_of_words))
            codes = posterior.sample((num_samples,))
            log_likelihood = (batch.bag_of_words * self.word_log_probs(codes)).sum(-1).mean(0).sum()
            kl = torch.distributions.kl_divergence(
                posterior, host.OneHotCategorical(logits=torch.zeros_like(posterior.logits))
            ).sum()
            return float(log_likelihood - kl)
        finally:
            torch.random.set_rng_state(generator_state)
