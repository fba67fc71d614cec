import dataclasses

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO

from pyro_redge import distributed
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
    data_parallel=False,
):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_core.corpus.Corpus`) by SVI with Adam.

    Returns a history: per epoch, the training loss per token, the wall-clock seconds and, when
    ``held_out`` is given, the held-out bound per token (:meth:`held_out_bound_per_token`).
    ``max_steps`` stops early (smoke runs). The loop is :func:`redge_core.topic_models.run_epochs`.

    With ``data_parallel=True`` the process must be one of a ``torch.distributed`` group (started by
    ``torchrun``, see :mod:`pyro_redge.distributed`): every process walks the same minibatches,
    fits its share of each (:func:`~pyro_redge.distributed.shard`) with its own noise (seed
    ``seed + rank``), and the gradients are averaged across the processes
    (:class:`~pyro_redge.distributed.DataParallelELBO`), so that the parameters stay equal in every
    process and one step equals a single-process step on the whole minibatch for the same noise.
    The history (and the held-out bound, computed by every process) is the same in each process;
    only rank 0 shows a progress bar."""
    pyro.clear_param_store()
    elbo = elbo_for(topic_model)
    if data_parallel:
        group = distributed.process_group()
        rank = distributed.rank(group)
        elbo = distributed.DataParallelELBO(elbo, group)
        progress = progress and rank == 0
    pyro.set_rng_seed(seed + rank if data_parallel else seed)
    svi = SVI(topic_model.model, topic_model.guide, pyro.optim.Adam({"lr": learning_rate}), elbo)
    started = []

    def step(documents, scale):
        if not data_parallel:
            batch = Batch.from_corpus(corpus, documents, scale, topic_model.device, topic_model.dtype)
            return svi.step(batch) / batch.scale, batch.num_tokens
        factor = distributed.share_scale(len(documents), group)
        batch = Batch.from_corpus(
            corpus, distributed.shard(documents, group), scale * factor, topic_model.device, topic_model.dtype
        )
        if not started:
            _create_parameters(topic_model, batch)
            distributed.broadcast_parameters(group=group)
            started.append(True)
        # This process's part of the minibatch's loss (its share's, or 1/world_size of the whole
        # minibatch's when every process takes all of it): the parts add up across the processes,
        # once per epoch in ``total_loss``. The tokens are the whole minibatch's.
        part = svi.step(batch) / batch.scale / (distributed.world_size(group) // factor)
        return part, corpus.subset(documents).num_tokens

    def total_loss(losses):
        return float(distributed.all_reduce_sum(torch.tensor(sum(losses), dtype=torch.float64), group))

    return run_epochs(
        topic_model,
        corpus,
        step,
        epochs,
        batch_size,
        seed,
        held_out,
        progress,
        max_steps,
        total_loss=total_loss if data_parallel else None,
    )


def _create_parameters(topic_model, batch):
    """Run the guide and the model once, without recording anything, so that every parameter of
    the model is in Pyro's parameter store (to be broadcast before the first step)."""
    with poutine.block(), poutine.trace(param_only=True):
        guide_trace = poutine.trace(topic_model.guide).get_trace(batch)
        poutine.replay(topic_model.model, trace=guide_trace)(batch)
