import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

from redge_core.topic_models import TOKEN_BUCKET, plan_batch, run_epochs


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
    def from_plan(cls, plan):
        """The JAX arrays of a :class:`redge_core.topic_models.BatchPlan`."""
        return cls(
            jnp.asarray(plan.bag_of_words),
            jnp.asarray(plan.document_mask),
            jnp.asarray(plan.document_of_token),
            jnp.asarray(plan.word_of_token),
            jnp.asarray(plan.token_mask),
            plan.scale,
        )

    @classmethod
    def from_corpus(cls, corpus, documents, scale=1.0, batch_size=None, dtype=jnp.float32):
        """The documents ``documents`` of ``corpus``, padded to ``batch_size`` rows and the
        tokens to a multiple of :data:`redge_core.topic_models.TOKEN_BUCKET`."""
        return cls.from_plan(plan_batch(corpus, documents, scale, batch_size, TOKEN_BUCKET, dtype))

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
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_core.corpus.Corpus`) by SVI with Adam,
    ``jit``-compiled. Returns the history of :func:`pyro_redge.topic_models.fit` and leaves the
    fitted parameters in ``topic_model.params``. The loop is
    :func:`redge_core.topic_models.run_epochs`."""
    svi = SVI(topic_model.model, topic_model.guide, optax.adam(learning_rate), elbo_for(topic_model))
    update = jax.jit(svi.update)
    first_size = min(batch_size, corpus.num_documents)
    first_batch = Batch.from_corpus(
        corpus, np.arange(first_size), corpus.num_documents / first_size, batch_size, topic_model.dtype
    )
    # Jitted: run eagerly, the first trace of model and guide compiles every operation on its own
    # (seconds of CPU per model); the parameters' constraints are all real, so no tracer leaks
    # into ``svi.constrain_fn``.
    state = jax.jit(svi.init)(jax.random.PRNGKey(seed), first_batch)

    def step(documents, scale):
        nonlocal state
        # The token count comes from the NumPy plan: reading it from the padded JAX mask would
        # wait for the device at every step.
        plan = plan_batch(corpus, documents, scale, batch_size, TOKEN_BUCKET, topic_model.dtype)
        state, loss = update(state, Batch.from_plan(plan))
        return loss / plan.scale, plan.num_tokens  # on the device: read once per epoch

    def end_of_epoch():
        topic_model.params = svi.get_params(state)

    return run_epochs(
        topic_model, corpus, step, epochs, batch_size, seed, held_out, progress, max_steps, end_of_epoch, _total_loss
    )


def _total_loss(losses):
    """The sum of the steps' losses, read from the device once."""
    return float(jnp.sum(jnp.stack(losses)))


def check_precision(dtype, owner):
    """A ``ValueError`` naming ``dtype`` when JAX cannot compute in it: float64 with JAX's x64 mode
    off would silently become float32. The model never changes that global setting itself."""
    available = jnp.zeros((), dtype).dtype
    if available != jnp.dtype(dtype):
        raise ValueError(
            f"dtype of {owner} is {jnp.dtype(dtype).name}, but JAX computes in {available.name} while its x64 mode "
            "is off: enable it (jax.config.update('jax_enable_x64', True), or `with jax.enable_x64(True):` around "
            f"building and fitting the model), or pass dtype=jnp.{available.name}"
        )
    return dtype


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
