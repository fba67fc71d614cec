import dataclasses

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO
from pyro.infer.util import zero_grads
from pyro.poutine.util import prune_subsample_sites

from pyro_redge import distributed
from pyro_redge.infer.elbo import ScoreFunction_ELBO
from redge_core.topic_models import SCORE_FUNCTION_PARTICLES, plan_batch, run_epochs


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
    guide samples host distributions, :class:`~pyro_redge.infer.ScoreFunction_ELBO` with a
    score-function estimator (``RLOO``, ``DisARM``; over
    :data:`~redge_core.topic_models.SCORE_FUNCTION_PARTICLES` particles unless ``num_particles``
    is more than 1), ``Trace_ELBO`` (pathwise) with our other estimators."""
    if topic_model.inference == "enumeration":
        return TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=1)
    if topic_model.inference == "reinforce":
        return TraceGraph_ELBO(num_particles=num_particles, max_plate_nesting=1)
    if topic_model.inference == "score_function":
        particles = num_particles if num_particles > 1 else SCORE_FUNCTION_PARTICLES
        return ScoreFunction_ELBO(num_particles=particles, max_plate_nesting=1)
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
    evaluate_every=None,
):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_core.corpus.Corpus`) by SVI with Adam.

    Returns a history: per epoch, the training loss per token, the wall-clock seconds and, when
    ``held_out`` is given, the held-out bound per token (:meth:`held_out_bound_per_token`), also
    every ``evaluate_every`` steps when given (with the steps taken, ``"held_out_steps"``).
    ``max_steps`` stops early (smoke runs). The loop is :func:`redge_core.topic_models.run_epochs`.

    With our estimators each step is :func:`pathwise_step`: the loss stays on the device and the
    epoch's losses are read once, at its end (Pyro's ``Trace_ELBO`` would read every site's
    log-probability on the host at every step). The baselines step with Pyro's ``SVI`` and their
    ELBO (``TraceEnum_ELBO``, ``TraceGraph_ELBO``), which read the loss at every step.

    With ``data_parallel=True`` the process must be one of a ``torch.distributed`` group (started by
    ``torchrun``, see :mod:`pyro_redge.distributed`): every process walks the same minibatches,
    fits its share of each (:func:`~pyro_redge.distributed.shard`) with its own noise (seed
    ``seed + rank``), and the gradients are averaged across the processes, so that the parameters
    stay equal in every process and one step equals a single-process step on the whole minibatch
    for the same noise. The history (and the held-out bound, computed by every process) is the
    same in each process; only rank 0 shows a progress bar."""
    pyro.clear_param_store()
    group = distributed.process_group() if data_parallel else None
    rank = distributed.rank(group) if data_parallel else 0
    pyro.set_rng_seed(seed + rank)
    optimizer = pyro.optim.Adam({"lr": learning_rate})
    if topic_model.inference == "pathwise":

        def update(batch):
            return pathwise_step(topic_model.model, topic_model.guide, optimizer, batch, group=group)

    else:
        elbo = elbo_for(topic_model)
        update = SVI(
            topic_model.model,
            topic_model.guide,
            optimizer,
            distributed.DataParallelELBO(elbo, group) if data_parallel else elbo,
        ).step
    started = []

    def step(documents, scale):
        if not data_parallel:
            batch = Batch.from_corpus(corpus, documents, scale, topic_model.device, topic_model.dtype)
            return update(batch) / batch.scale, batch.num_tokens
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
        part = update(batch) / batch.scale / (distributed.world_size(group) // factor)
        return part, corpus.subset(documents).num_tokens

    def total_loss(losses):
        total = sum(losses)  # on the device for pathwise steps: one read per epoch, here
        if data_parallel:
            total = distributed.all_reduce_sum(torch.as_tensor(total), group)
        return float(total)

    return run_epochs(
        topic_model,
        corpus,
        step,
        epochs,
        batch_size,
        seed,
        held_out,
        progress and rank == 0,
        max_steps,
        total_loss=total_loss,
        evaluate_every=evaluate_every,
    )


def pathwise_loss(model, guide, *args, **kwargs):
    """The negative ELBO of one draw, as a tensor that is never read on the host: guide log-density
    minus model log-density over the traced sites (subsample sites pruned). For a guide whose sites
    are all reparameterized (ours, or a host distribution with ``rsample``) its gradient is
    ``Trace_ELBO``'s; any other guide site is a ``ValueError`` (its score-function term would be
    missing: use ``Trace_ELBO``)."""
    guide_trace = prune_subsample_sites(poutine.trace(guide).get_trace(*args, **kwargs))
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site["fn"].has_rsample:
            raise ValueError(
                f"pathwise_loss needs reparameterized guide sites, but site {name!r} samples "
                f"{type(site['fn']).__name__}, which has no rsample: use Trace_ELBO (REINFORCE) for it"
            )
    model_trace = prune_subsample_sites(
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    )
    return guide_trace.log_prob_sum() - model_trace.log_prob_sum()


def pathwise_step(model, guide, optimizer, *args, group=None, **kwargs):
    """One step of SVI with :func:`pathwise_loss` and the Pyro optimizer ``optimizer``: backward,
    the gradients averaged over ``group`` when given (see :mod:`pyro_redge.distributed`, with AIMLE's
    statistics reduced over it), the optimizer's update, the gradients zeroed. Returns the loss as
    a detached tensor, where it was computed (no host synchronisation)."""
    with poutine.trace(param_only=True) as capture, distributed.reduce_statistics(group):
        loss = pathwise_loss(model, guide, *args, **kwargs)
        loss.backward()
    parameters = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
    parameters = [parameters[name] for name in sorted(parameters)]
    if group is not None:
        distributed.average_gradients(parameters, group)
    optimizer(parameters)
    zero_grads(parameters)
    return loss.detach()


def _create_parameters(topic_model, batch):
    """Run the guide and the model once, without recording anything, so that every parameter of
    the model is in Pyro's parameter store (to be broadcast before the first step)."""
    with poutine.block(), poutine.trace(param_only=True):
        guide_trace = poutine.trace(topic_model.guide).get_trace(batch)
        poutine.replay(topic_model.model, trace=guide_trace)(batch)
