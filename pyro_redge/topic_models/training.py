import dataclasses

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO

from redge_core.topic_models import plan_batch, run_epochs


@dataclasses.dataclass
class Batch:
    """A minibatch of documents: dense counts, the flattened tokens, and the ELBO's scale
    (documents in the corpus / documents in the batch)."""

    bag_of_words: torch.Tensor
    document_of_token: torch.Tensor
    word_of_token: torch.Tensor
    scale: float
    #: The most tokens in one document (from the NumPy plan: read without waiting for the device).
    longest_document: int = 0

    @classmethod
    def from_corpus(cls, corpus, documents, scale=1.0, device="cpu", dtype=torch.float32):
        plan = plan_batch(corpus, documents, scale)
        return cls(
            torch.as_tensor(plan.bag_of_words, dtype=dtype, device=device),
            torch.as_tensor(plan.document_of_token, device=device),
            torch.as_tensor(plan.word_of_token, device=device),
            scale,
            int(plan.bag_of_words.sum(-1).max(initial=0)),
        )

    @property
    def num_tokens(self):
        return len(self.word_of_token)


def encoder(vocabulary_size, hidden_size, output_size, seed=0):
    """The amortising network of every guide: log counts -> hidden -> outputs, initialised from
    ``seed`` (PyTorch's global generator is left as it was, so that a model's start does not depend
    on what ran before it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(vocabulary_size, hidden_size),
            torch.nn.Softplus(),
            torch.nn.Linear(hidden_size, output_size),
        )


def elbo_for(topic_model, num_particles=1):
    """``TraceEnum_ELBO`` when the model enumerates, ``TraceGraph_ELBO`` (REINFORCE) when its
    guide samples host distributions, ``Trace_ELBO`` (pathwise) with our estimators."""
    if topic_model.inference == "enumeration":
        return TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=1)
    if topic_model.inference == "reinforce":
        return TraceGraph_ELBO(num_particles=num_particles, max_plate_nesting=1)
    return Trace_ELBO(num_particles=num_particles, max_plate_nesting=1)


def fit(
    topic_model,
    corpus,
    epochs=10,
    batch_size=64,
    learning_rate=0.01,
    seed=0,
    held_out=None,
    progress=True,
    max_steps=None,
):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_core.corpus.Corpus`) by SVI with Adam.

    Returns a history: per epoch, the training loss per token, the wall-clock seconds and, when
    ``held_out`` is given, the held-out bound per token (:meth:`held_out_bound_per_token`).
    ``max_steps`` stops early (smoke runs). The loop is :func:`redge_core.topic_models.run_epochs`."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    svi = SVI(topic_model.model, topic_model.guide, pyro.optim.Adam({"lr": learning_rate}), elbo_for(topic_model))

    def step(documents, scale):
        batch = Batch.from_corpus(corpus, documents, scale, topic_model.device, topic_model.dtype)
        return svi.step(batch) / batch.scale, batch.num_tokens

    return run_epochs(topic_model, corpus, step, epochs, batch_size, seed, held_out, progress, max_steps)
