import dataclasses
import time

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO
from tqdm.auto import tqdm


@dataclasses.dataclass
class Batch:
    """A minibatch of documents: dense counts, the flattened tokens, and the ELBO's scale
    (documents in the corpus / documents in the batch)."""

    bag_of_words: torch.Tensor
    document_of_token: torch.Tensor
    word_of_token: torch.Tensor
    scale: float

    @classmethod
    def from_corpus(cls, corpus, documents, scale=1.0, device="cpu", dtype=torch.float32):
        document_of_token, word_of_token = corpus.tokens(documents)
        return cls(
            torch.as_tensor(corpus.bag_of_words(documents), dtype=dtype, device=device),
            torch.as_tensor(document_of_token, device=device),
            torch.as_tensor(word_of_token, device=device),
            scale,
        )

    @property
    def num_tokens(self):
        return len(self.word_of_token)


def encoder(vocabulary_size, hidden_size, output_size):
    """The amortising network of every guide: log counts -> hidden -> outputs."""
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


def fit(topic_model, corpus, epochs=10, batch_size=64, learning_rate=0.01, seed=0, held_out=None, progress=True, max_steps=None):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_corpus.Corpus`) by SVI with Adam.

    Returns a history: per epoch, the training loss per token, the wall-clock seconds and, when
    ``held_out`` is given, the held-out bound per token (:meth:`held_out_bound_per_token`).
    ``max_steps`` stops early (smoke runs)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    shuffler = np.random.default_rng(seed)
    svi = SVI(topic_model.model, topic_model.guide, pyro.optim.Adam({"lr": learning_rate}), elbo_for(topic_model))
    history = {"epoch": [], "loss_per_token": [], "seconds": [], "held_out_bound_per_token": []}
    steps = 0
    bar = tqdm(range(epochs), desc=topic_model.label, disable=not progress, leave=False)
    for epoch in bar:
        order = shuffler.permutation(corpus.num_documents)
        start, loss, tokens = time.perf_counter(), 0.0, 0
        for first in range(0, len(order), batch_size):
            documents = order[first : first + batch_size]
            batch = Batch.from_corpus(corpus, documents, corpus.num_documents / len(documents), topic_model.device, topic_model.dtype)
            loss += svi.step(batch) / batch.scale
            tokens += batch.num_tokens
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        history["epoch"].append(epoch + 1)
        history["seconds"].append(time.perf_counter() - start)
        history["loss_per_token"].append(loss / tokens)
        if held_out is not None:
            history["held_out_bound_per_token"].append(topic_model.held_out_bound_per_token(held_out))
        bar.set_postfix(loss_per_token=f"{loss / tokens:.3f}")
        if max_steps is not None and steps >= max_steps:
            break
    return history


def check_arguments(estimator, **sizes):
    """``ValueError`` naming the argument: ``estimator`` must be one of ours or ``None`` (the
    baseline), every size a positive integer."""
    from pyro_redge.estimators import Estimator

    if estimator is not None and not isinstance(estimator, Estimator):
        raise ValueError(f"estimator must be an estimator of pyro_redge.estimators or None (the baseline), got {estimator!r}")
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
