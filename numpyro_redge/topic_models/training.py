import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO
from tqdm.auto import tqdm

# Token counts vary from batch to batch; padding them to a multiple of this keeps the number of
# shapes (hence of jit compilations) small.
TOKEN_BUCKET = 2048


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Batch:
    """A minibatch of documents, padded to static shapes for ``jit``: dense counts, the
    flattened tokens, masks of the real documents and tokens, and the ELBO's scale (documents in
    the corpus / real documents in the batch)."""

    bag_of_words: jnp.ndarray
    document_mask: jnp.ndarray
    document_of_token: jnp.ndarray
    word_of_token: jnp.ndarray
    token_mask: jnp.ndarray
    # Static: NumPyro's enumeration accepts only a Python-number scale (one compilation per value).
    scale: float = dataclasses.field(metadata={"static": True})

    @classmethod
    def from_corpus(cls, corpus, documents, scale=1.0, batch_size=None, dtype=jnp.float32):
        documents = np.asarray(documents)
        batch_size = len(documents) if batch_size is None else batch_size
        bag_of_words = np.zeros((batch_size, corpus.vocabulary_size), dtype=dtype)
        bag_of_words[: len(documents)] = corpus.bag_of_words(documents)
        document_of_token, word_of_token = corpus.tokens(documents)
        padded = -(-max(len(word_of_token), 1) // TOKEN_BUCKET) * TOKEN_BUCKET
        token_mask = np.arange(padded) < len(word_of_token)
        pad = padded - len(word_of_token)
        return cls(
            jnp.asarray(bag_of_words),
            jnp.asarray(np.arange(batch_size) < len(documents)),
            jnp.asarray(np.pad(document_of_token, (0, pad))),
            jnp.asarray(np.pad(word_of_token, (0, pad))),
            jnp.asarray(token_mask),
            float(scale),
        )

    @property
    def num_tokens(self):
        return int(self.token_mask.sum())


def elbo_for(topic_model, num_particles=1):
    """``TraceEnum_ELBO`` when the model enumerates, ``TraceGraph_ELBO`` (REINFORCE) when its
    guide samples host distributions, ``Trace_ELBO`` (pathwise) with our estimators."""
    if topic_model.inference == "enumeration":
        from numpyro.infer import TraceEnum_ELBO  # needs funsor

        return TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=1)
    if topic_model.inference == "reinforce":
        return TraceGraph_ELBO(num_particles=num_particles)
    return Trace_ELBO(num_particles=num_particles)


def fit(topic_model, corpus, epochs=10, batch_size=64, learning_rate=0.01, seed=0, held_out=None, progress=True, max_steps=None):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_corpus.Corpus`) by SVI with Adam,
    ``jit``-compiled. Returns the history of :func:`pyro_redge.topic_models.fit` and leaves the
    fitted parameters in ``topic_model.params``."""
    shuffler = np.random.default_rng(seed)
    svi = SVI(topic_model.model, topic_model.guide, optax.adam(learning_rate), elbo_for(topic_model))
    update = jax.jit(svi.update)
    scale = corpus.num_documents / min(batch_size, corpus.num_documents)
    first_batch = Batch.from_corpus(corpus, np.arange(min(batch_size, corpus.num_documents)), scale, batch_size, topic_model.dtype)
    state = svi.init(jax.random.PRNGKey(seed), first_batch)
    history = {"epoch": [], "loss_per_token": [], "seconds": [], "held_out_bound_per_token": []}
    steps = 0
    bar = tqdm(range(epochs), desc=topic_model.label, disable=not progress, leave=False)
    for epoch in bar:
        order = shuffler.permutation(corpus.num_documents)
        start, loss, tokens = time.perf_counter(), 0.0, 0
        for first in range(0, len(order), batch_size):
            documents = order[first : first + batch_size]
            batch = Batch.from_corpus(corpus, documents, corpus.num_documents / len(documents), batch_size, topic_model.dtype)
            state, step_loss = update(state, batch)
            loss += float(step_loss) / float(batch.scale)
            tokens += batch.num_tokens
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        topic_model.params = svi.get_params(state)
        history["epoch"].append(epoch + 1)
        history["seconds"].append(time.perf_counter() - start)
        history["loss_per_token"].append(loss / tokens)
        if held_out is not None:
            history["held_out_bound_per_token"].append(topic_model.held_out_bound_per_token(held_out))
        bar.set_postfix(loss_per_token=f"{loss / tokens:.3f}")
        if max_steps is not None and steps >= max_steps:
            break
    return history


class Encoder:
    """The amortising network of every guide, log counts -> hidden -> outputs, as ``numpyro.param``
    sites named ``{name}.*`` (the same architecture and initialisation as ``torch.nn.Linear``)."""

    def __init__(self, name, vocabulary_size, hidden_size, output_size, seed=0, dtype=jnp.float32):
        rng = np.random.default_rng(seed)
        bound_in, bound_hidden = 1 / np.sqrt(vocabulary_size), 1 / np.sqrt(hidden_size)
        self.name = name
        self.initial = {
            "hidden_weight": jnp.asarray(rng.uniform(-bound_in, bound_in, (vocabulary_size, hidden_size)), dtype),
            "hidden_bias": jnp.asarray(rng.uniform(-bound_in, bound_in, hidden_size), dtype),
            "output_weight": jnp.asarray(rng.uniform(-bound_hidden, bound_hidden, (hidden_size, output_size)), dtype),
            "output_bias": jnp.asarray(rng.uniform(-bound_hidden, bound_hidden, output_size), dtype),
        }

    def __call__(self, bag_of_words, params=None):
        if params is None:
            weights = {key: numpyro.param(f"{self.name}.{key}", value) for key, value in self.initial.items()}
        else:
            weights = {key: params[f"{self.name}.{key}"] for key in self.initial}
        hidden = jax.nn.softplus(jnp.log1p(bag_of_words) @ weights["hidden_weight"] + weights["hidden_bias"])
        return hidden @ weights["output_weight"] + weights["output_bias"]


def check_arguments(estimator, **sizes):
    """``ValueError`` naming the argument: ``estimator`` must be one of ours or ``None`` (the
    baseline), every size a positive integer."""
    from numpyro_redge.estimators import Estimator

    if estimator is not None and not isinstance(estimator, Estimator):
        raise ValueError(f"estimator must be an estimator of numpyro_redge.estimators or None (the baseline), got {estimator!r}")
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
