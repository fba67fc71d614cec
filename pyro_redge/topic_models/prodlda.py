import pyro
import pyro.distributions as host
import torch
from pyro import poutine

from pyro_redge.topic_models.training import Batch, encoder
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
        >>> from pyro_redge.topic_models import ProdLDA, fit
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

    def __init__(
        self,
        vocabulary_size,
        num_topics=20,
        concentration=0.1,
        hidden_size=100,
        device="cpu",
        dtype=torch.float32,
        seed=0,
    ):
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_topics", num_topics),
            ("hidden_size", hidden_size),
        ]:
            check_positive_integer(name, value)
        self.concentration = concentration
        self.prior_scale = prodlda_prior_scale(num_topics, concentration)
        self.vocabulary_size, self.num_topics, self.device, self.dtype = vocabulary_size, num_topics, device, dtype
        self.initial_topic_weights = torch.as_tensor(
            initial_topic_logits(None, num_topics, vocabulary_size, seed, 0.1), dtype=dtype, device=device
        )
        self.encoder = encoder(vocabulary_size, hidden_size, 2 * num_topics, seed).to(device=device, dtype=dtype)

    def _decoder(self):
        weights = pyro.param("prodlda.topic_weights", self.initial_topic_weights)
        bias = pyro.param("prodlda.bias", torch.zeros(self.vocabulary_size, dtype=self.dtype, device=self.device))
        return weights, bias

    def word_log_probs(self, proportions):
        """``(..., words)`` log-probabilities of the words given topic proportions ``(..., K)``."""
        weights, bias = self._decoder()
        return (bias + proportions @ weights).log_softmax(-1)

    def _prior(self, rows):
        zeros = torch.zeros(rows, self.num_topics, dtype=self.dtype, device=self.device)
        return host.Normal(zeros, self.prior_scale).to_event(1)

    def model(self, batch):
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            logits = pyro.sample("topic_logits", self._prior(len(batch.bag_of_words)))
            pyro.sample(
                "words",
                host.Multinomial(
                    batch.longest_document, logits=self.word_log_probs(logits.softmax(-1)), validate_args=False
                ),
                obs=batch.bag_of_words,
            )

    def _posterior(self, bag_of_words):
        location, scale = self.encoder(bag_of_words.log1p()).chunk(2, -1)
        return host.Normal(location, torch.nn.functional.softplus(scale) + 1e-3).to_event(1)

    def guide(self, batch):
        pyro.module("prodlda.encoder", self.encoder)
        with poutine.scale(scale=batch.scale), pyro.plate("documents", len(batch.bag_of_words)):
            pyro.sample("topic_logits", self._posterior(batch.bag_of_words))

    def topics(self):
        """``(topics, words)``: each topic's word distribution on its own, ``softmax(b + β_k)``."""
        weights, bias = self._decoder()
        return (bias + weights).softmax(-1).detach().cpu().numpy()

    @torch.no_grad()
    def _held_out_bound(self, corpus, num_samples, seed):
        r"""The evidence lower bound per token on ``corpus`` (the word sequence's likelihood, as for
        the other topic models): :math:`E_q[\sum_v x_v \log p_v(\theta)] - \mathrm{KL}(q(z) \| p(z))`,
        the expectation by ``num_samples`` draws, the KL exact."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            batch = Batch.from_corpus(corpus, range(corpus.num_documents), 1.0, self.device, self.dtype)
            posterior = self._posterior(batch.bag_of_words)
            proportions = posterior.sample((num_samples,)).softmax(-1)
            log_likelihood = (batch.bag_of_words * self.word_log_probs(proportions)).sum(-1).mean(0).sum()
            kl = torch.distributions.kl_divergence(posterior, self._prior(corpus.num_documents)).sum()
            return float(log_likelihood - kl)
        finally:
            torch.random.set_rng_state(generator_state)
