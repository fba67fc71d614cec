import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

from numpyro_redge import distributed
from numpyro_redge.infer.elbo import ScoreFunction_ELBO
from redge_core.topic_models import SCORE_FUNCTION_PARTICLES, TOKEN_BUCKET, plan_batch, run_epochs


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
    guide samples host distributions, :class:`~numpyro_redge.infer.ScoreFunction_ELBO` with a
    score-function estimator (``RLOO``, ``DisARM``; over
    :data:`~redge_core.topic_models.SCORE_FUNCTION_PARTICLES` particles unless ``num_particles``
    is more than 1), ``Trace_ELBO`` (pathwise) with our other estimators."""
    if topic_model.inference == "enumeration":
        from numpyro.infer import TraceEnum_ELBO  # needs funsor

        return TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=1)
    if topic_model.inference == "reinforce":
        return TraceGraph_ELBO(num_particles=num_particles)
    if topic_model.inference == "score_function":
        return ScoreFunction_ELBO(num_particles=num_particles if num_particles > 1 else SCORE_FUNCTION_PARTICLES)
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
    data_parallel=False,
    evaluate_every=None,
):
    """Fit ``topic_model`` to ``corpus`` (a :class:`redge_core.corpus.Corpus`) by SVI with Adam,
    ``jit``-compiled. Returns the history of :func:`pyro_redge.topic_models.fit` and leaves the
    fitted parameters in ``topic_model.params``. The loop is
    :func:`redge_core.topic_models.run_epochs`.

    With ``data_parallel=True`` each minibatch's documents are split over every device
    (``jax.devices()``; see :mod:`numpyro_redge.distributed`) and the parameters replicated: each
    device draws the noise of its own documents, the reductions are global, and the fit equals the
    single-device fit for the same seed, up to the order of floating-point sums. The minibatch is
    padded (with masked documents) to a multiple of the number of devices."""
    svi = SVI(topic_model.model, topic_model.guide, optax.adam(learning_rate), elbo_for(topic_model))
    rows, token_bucket, place, compile_options = batch_size, TOKEN_BUCKET, (lambda batch: batch), {}
    if data_parallel:
        mesh = distributed.data_parallel_mesh()
        rows, token_bucket = distributed.padded_rows(batch_size, mesh), distributed.row_multiple(TOKEN_BUCKET, mesh)
        place = functools.partial(distributed.shard_rows, mesh=mesh)
        compile_options = {"out_shardings": distributed.replicated(mesh)}

    # A model that reads only the counts gets no tokens: each new token count would be a new
    # shape, hence a new compilation of the update.
    reads_tokens = getattr(topic_model, "reads_tokens", True)

    def plan(documents, scale):
        return plan_batch(corpus, documents, scale, rows, token_bucket, topic_model.dtype, reads_tokens)

    update = jax.jit(svi.update, **compile_options)
    first_size = min(batch_size, corpus.num_documents)
    first_batch = place(Batch.from_plan(plan(np.arange(first_size), corpus.num_documents / first_size)))
    # Jitted: run eagerly, the first trace of model and guide compiles every operation on its own
    # (seconds of CPU per model); the parameters' constraints are all real, so no tracer leaks
    # into ``svi.constrain_fn``.
    state = jax.jit(svi.init, **compile_options)(jax.random.PRNGKey(seed), first_batch)

    def step(documents, scale):
        nonlocal state
        # The token count comes from the NumPy plan: reading it from the padded JAX mask would
        # wait for the device at every step.
        batch_plan = plan(documents, scale)
        state, loss = update(state, place(Batch.from_plan(batch_plan)))
        return loss / batch_plan.scale, batch_plan.num_tokens  # on the device: read once per epoch

    def end_of_epoch():
        topic_model.params = _local(svi.get_params(state))

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
        end_of_epoch,
        _total_loss,
        evaluate_every,
    )


def _total_loss(losses):
    """The sum of the steps' losses, read from the device once."""
    return float(jnp.sum(jnp.stack(_local(losses))))


def _local(tree):
    """Each replicated array of ``tree`` as this process's copy (on several machines a replicated
    array is not addressable as a whole, and eager code, e.g. the held-out bound, could not use
    it); arrays on one device are returned as they are."""
    return jax.tree.map(lambda value: value.addressable_data(0) if len(value.sharding.device_set) > 1 else value, tree)


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
