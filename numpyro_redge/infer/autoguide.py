import contextlib
import math
import warnings

import jax
import jax.numpy as jnp
import numpyro
from numpyro import handlers
from numpyro.distributions import ExpandedDistribution, Independent, MaskedDistribution, constraints
from numpyro.distributions.util import periodic_repeat
from numpyro.infer.autoguide import AutoGuide, AutoNormal

from numpyro_redge.distributions.registry import REGISTRY
from numpyro_redge.estimators import DEFAULT_ESTIMATOR
from numpyro_redge.infer.reparam import relax


def unwrap(fn):
    """The distribution under ``Independent``/mask/expand wrappers, and the wrappers' event dims."""
    reinterpreted = 0
    while isinstance(fn, (Independent, MaskedDistribution, ExpandedDistribution)):
        if isinstance(fn, Independent):
            reinterpreted += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, reinterpreted


class UnrelaxedModelWarning(UserWarning):
    """A model given to :class:`AutoRelaxed` keeps host discrete latent sites: SVI given that model
    (rather than the relaxed one) fits a wrong posterior without an error."""


def warn_unrelaxed(sites, package):
    """Warn, naming ``sites`` (``{name: host class name}``) and the fix, if there are any."""
    if sites:
        listed = ", ".join(f"'{name}' ({kind})" for name, kind in sites.items())
        warnings.warn(
            "AutoRelaxed: the model keeps unobserved sites of the host's discrete distributions: "
            f"{listed}. SVI given this model scores the guide's draws with the host log_prob, which is not "
            "differentiable in the value, and converges to a wrong posterior without an error. "
            "Relax the model and give the relaxed one to both SVI and the guide: "
            f"model = {package}.relax(model, estimator) (or pass guide.model to SVI).",
            UnrelaxedModelWarning,
            stacklevel=4,
        )


class AutoRelaxed(AutoGuide):
    r"""An autoguide for models with discrete latent variables: a mean-field guide of our
    distributions on every discrete latent site (the same family as the prior, with its own
    learnable parameter, initialised at the prior's plus ``init_scale`` noise where it is
    unconstrained; each registered class says which parameter, through ``guide_parameter`` and
    ``guide``), and :class:`~numpyro.infer.autoguide.AutoNormal` on the continuous ones.


    **The model given to SVI must be relaxed too.** The guide relaxes its own copy of the model
    with :func:`~numpyro_redge.infer.relax` (that copy is :attr:`model`); a model that keeps a host
    discrete latent site scores the guide's draws with the host ``log_prob``, which is not
    differentiable in the value: SVI would then run without an error and converge to a wrong
    posterior. Relax the model once and give it to both::

        model = numpyro_redge.relax(model, ReinMax())
        guide = numpyro_redge.AutoRelaxed(model, ReinMax())
        svi = SVI(model, guide, optax.adam(1e-2), Trace_ELBO())

    (``SVI(guide.model, guide, ...)`` is the same). When the model given to ``AutoRelaxed`` has
    host discrete latent sites, the guide warns once, when it first traces the model, with an
    :class:`UnrelaxedModelWarning` naming the sites and this fix; relaxing the model first
    silences it. A hand-written guide of our distributions needs the same relaxed model.

    Works inside plates (with subsampling), under ``jit`` (count sites need a static
    ``truncation``) and with :class:`~numpyro.infer.Predictive`; :meth:`median` returns the mode
    of each discrete site and the median of each continuous one; :meth:`quantiles` covers the
    continuous sites.

    :param callable model: the model.
    :param estimator: the gradient estimator of the discrete sites.
    :param float init_scale: the scale of the initial noise on the discrete parameters and the
        initial scale of :class:`~numpyro.infer.autoguide.AutoNormal`.
    :param int truncation: a static truncation for count sites (required under ``jit``).
    """

    def __init__(
        self, model, estimator=DEFAULT_ESTIMATOR, init_scale=0.1, truncation=None, *, prefix="auto", create_plates=None
    ):
        if not isinstance(init_scale, float) or not init_scale > 0:
            raise ValueError(f"init_scale must be a float > 0, got {init_scale!r}")
        self.estimator, self.truncation, self._init_scale = estimator, truncation, init_scale
        self._discrete, self._continuous = {}, None
        self._given_model = model
        super().__init__(relax(model, estimator, truncation), prefix=prefix, create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs):
        # NumPyro's own set-up would look for a bijection onto each support; ours have none (the
        # values are discrete), so trace the model directly.
        rng_key = numpyro.prng_key()
        with handlers.block():
            given = handlers.trace(handlers.seed(self._given_model, rng_key)).get_trace(*args, **kwargs)
            self.prototype_trace = handlers.trace(handlers.seed(self.model, rng_key)).get_trace(*args, **kwargs)
        warn_unrelaxed(
            {
                name: type(unwrap(site["fn"])[0]).__name__
                for name, site in given.items()
                if site["type"] == "sample"
                and not site["is_observed"]
                and site["fn"].support.is_discrete
                and not REGISTRY.is_ours(unwrap(site["fn"])[0])
            },
            "numpyro_redge",
        )
        self._prototype_frames, self._prototype_frame_full_sizes = {}, {}
        continuous = []
        noise_key = jax.random.PRNGKey(0) if rng_key is None else rng_key
        for name, site in self.prototype_trace.items():
            if site["type"] == "plate":
                self._prototype_frame_full_sizes[name] = site["args"][0]
            if site["type"] != "sample" or site["is_observed"]:
                continue
            for frame in site["cond_indep_stack"]:
                self._prototype_frames.setdefault(frame.name, frame)
            prior, reinterpreted = unwrap(site["fn"])
            if not REGISTRY.is_ours(prior):
                continuous.append(name)
                continue
            init, constraint = prior.guide_parameter()
            init = jnp.broadcast_to(jnp.asarray(init), jnp.broadcast_shapes(jnp.shape(init), jnp.shape(site["value"])))
            if constraint is constraints.real:
                noise_key, key = jax.random.split(noise_key)
                init = init + self._init_scale * jax.random.normal(key, init.shape, init.dtype)
            event_dim = site["fn"].event_dim
            self._discrete[name] = (init, constraint, prior, reinterpreted, event_dim)
        for name, (init, constraint, prior, reinterpreted, event_dim) in list(self._discrete.items()):
            for frame in self.prototype_trace[name]["cond_indep_stack"]:
                full_size = self._prototype_frame_full_sizes[frame.name]
                if full_size != frame.size:
                    init = periodic_repeat(init, full_size, frame.dim - event_dim)
            self._discrete[name] = (init, constraint, prior, reinterpreted, event_dim)
        if continuous:
            self._continuous = AutoNormal(
                handlers.block(self.model, expose=continuous),
                prefix=f"{self.prefix}_continuous",
                init_scale=self._init_scale,
                create_plates=self.create_plates,
            )

    def _parameter_name(self, name):
        return f"{self.prefix}_{name}_relaxed"

    def __call__(self, *args, **kwargs):
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, (init, constraint, prior, reinterpreted, event_dim) in self._discrete.items():
            with contextlib.ExitStack() as stack:
                for frame in self.prototype_trace[name]["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                parameter = numpyro.param(self._parameter_name(name), init, constraint=constraint, event_dim=event_dim)
                guide = prior.guide(parameter, self.estimator, self.truncation)
                result[name] = numpyro.sample(name, guide.to_event(reinterpreted))
        if self._continuous is not None:
            result.update(self._continuous(*args, **kwargs))
        return result

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs):
        """Draws of every latent site from the guide with ``params``, of leading shape ``sample_shape``."""

        def draw(key):
            with handlers.block():
                return handlers.seed(handlers.substitute(self, data=params), key)(*args, **kwargs)

        if not sample_shape:
            return draw(rng_key)
        count = int(math.prod(sample_shape))
        samples = jax.vmap(draw)(jax.random.split(rng_key, count))
        return jax.tree_util.tree_map(lambda leaf: leaf.reshape(tuple(sample_shape) + leaf.shape[1:]), samples)

    def median(self, params):
        """The mode of each discrete site (for a k-subset: the top k) and the median of each
        continuous one."""
        medians = {
            name: prior.guide(params[self._parameter_name(name)], self.estimator, self.truncation).mode
            for name, (_, _, prior, _, _) in self._discrete.items()
        }
        if self._continuous is not None:
            medians.update(self._continuous.median(params))
        return medians

    def quantiles(self, params, quantiles):
        """Quantiles of the continuous sites (see :class:`~numpyro.infer.autoguide.AutoNormal`)."""
        if self._continuous is None:
            return {}
        return self._continuous.quantiles(params, quantiles)
