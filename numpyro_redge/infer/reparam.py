import numpyro.distributions as host
from numpyro import handlers
from numpyro.infer.reparam import Reparam

from numpyro_redge.distributions.registry import REGISTRY
from numpyro_redge.estimators import DEFAULT_ESTIMATOR

_WRAPPERS = (host.Independent, host.MaskedDistribution, host.ExpandedDistribution)


def relaxed_twin(fn, estimator, truncation, name):
    """Our registered distribution with the parameters of the host distribution ``fn`` (no
    wrappers); ``fn`` itself if it is already ours."""
    if REGISTRY.is_ours(fn):
        return fn
    ours = REGISTRY.ours_for_host(fn)
    if ours is not None:
        try:
            return ours.from_host(fn, estimator, truncation)
        except ValueError as error:
            raise ValueError(f"RelaxReparam at site '{name}': {error}") from error
    if isinstance(fn, (host.CategoricalProbs, host.CategoricalLogits)):
        raise ValueError(
            f"RelaxReparam at site '{name}': a Categorical's value is an integer index, and an index "
            "cannot carry a pathwise gradient (it is a step function of the relaxed one-hot sample). "
            "Write the site as numpyro_redge.OneHotCategorical (value @ jnp.arange(K) recovers the index)."
        )
    raise ValueError(
        f"RelaxReparam at site '{name}': {type(fn).__name__} is not supported; "
        f"supported: {REGISTRY.supported_hosts()} (NumPyro has no OneHotCategorical: write one-hot sites with ours)"
    )


class RelaxReparam(Reparam):
    r"""Reparameterizes a discrete site written with NumPyro's own distributions by ours, with the
    same parameters, so that an existing model runs by pathwise gradients unchanged::

        model = numpyro.handlers.reparam(model, config={"z": RelaxReparam(ReinMax())})

    Supports every host distribution registered in
    :data:`numpyro_redge.distributions.registry.REGISTRY` (``Bernoulli``, ``Poisson``,
    ``Binomial``, ``Geometric``, ``NegativeBinomial``; NumPyro has no ``OneHotCategorical``: write
    one-hot sites with ours), inside plates and under ``.to_event()``, ``.expand()`` and
    ``.mask()``. Observed sites and sites already of ours are left alone. A
    ``Categorical`` site is a ``ValueError`` that explains why (its integer value cannot carry a
    gradient) and points to :class:`~numpyro_redge.OneHotCategorical`; so is any other
    distribution, and an estimator the distribution does not accept, each naming the site.

    :param estimator: the gradient estimator (default ``ReinMax()``,
        :data:`~numpyro_redge.estimators.DEFAULT_ESTIMATOR`).
    :param int truncation: the static truncation of count sites, required under ``jax.jit``.
    """

    def __init__(self, estimator=DEFAULT_ESTIMATOR, truncation=None):
        self.estimator = estimator
        self.truncation = truncation

    def __call__(self, name, fn, obs):
        if obs is not None:
            return fn, obs
        layers = []
        while isinstance(fn, _WRAPPERS):
            layers.append(fn)
            fn = fn.base_dist
        new_fn = relaxed_twin(fn, self.estimator, self.truncation, name)
        for layer in reversed(layers):
            if isinstance(layer, host.Independent):
                new_fn = new_fn.to_event(layer.reinterpreted_batch_ndims)
            elif isinstance(layer, host.MaskedDistribution):
                new_fn = new_fn.mask(layer._mask)
            else:
                new_fn = new_fn.expand(layer.batch_shape)
        return new_fn, None


def relax(model, estimator=DEFAULT_ESTIMATOR, truncation=None):
    """``model`` with every latent site of a discrete host distribution relaxed by
    :class:`RelaxReparam` (an unregistered one, e.g. ``Categorical``, is its ``ValueError``); other
    sites, observed sites and sites already of ours are unchanged."""

    def config(msg):
        if msg.get("is_observed") or msg.get("fn") is None:
            return None
        fn = msg["fn"]
        while isinstance(fn, _WRAPPERS):
            fn = fn.base_dist
        if fn.support.is_discrete:
            return RelaxReparam(estimator, truncation)
        return None

    return handlers.reparam(model, config=config)
