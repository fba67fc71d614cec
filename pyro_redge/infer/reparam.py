import torch
from pyro import poutine
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.infer.reparam.reparam import Reparam

from pyro_redge.distributions.registry import REGISTRY
from pyro_redge.estimators import DEFAULT_ESTIMATOR

_WRAPPERS = (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)


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
    if isinstance(fn, torch.distributions.Categorical):
        raise ValueError(
            f"RelaxReparam at site '{name}': a Categorical's value is an integer index, and an index "
            "cannot carry a pathwise gradient (it is a step function of the relaxed one-hot sample). "
            "Write the site as OneHotCategorical (value @ torch.arange(K) recovers the index)."
        )
    raise ValueError(
        f"RelaxReparam at site '{name}': {type(fn).__name__} is not supported; supported: {REGISTRY.supported_hosts()}"
    )


class RelaxReparam(Reparam):
    r"""Reparameterizes a discrete site written with Pyro's own distributions by ours, with the
    same parameters, so that an existing model runs by pathwise gradients unchanged::

        model = poutine.reparam(model, config={"z": RelaxReparam(ReinMax())})

    Supports every host distribution registered in
    :data:`pyro_redge.distributions.registry.REGISTRY` (``OneHotCategorical``, ``Bernoulli``,
    ``Poisson``, ``Binomial``, ``Geometric``, ``NegativeBinomial``), inside plates and under
    ``.to_event()``, ``.expand()`` and ``.mask()``. Observed sites and sites already of ours are
    left alone. A ``Categorical`` site is a ``ValueError`` that explains why (its integer value
    cannot carry a gradient) and points to ``OneHotCategorical``; so is any other distribution,
    and an estimator the distribution does not accept, each naming the site.

    :param estimator: the gradient estimator (default ``ReinMax()``, :data:`~pyro_redge.estimators.DEFAULT_ESTIMATOR`).
    :param int truncation: the static truncation of count sites (``None``: from ``tail_mass``).
    """

    def __init__(self, estimator=DEFAULT_ESTIMATOR, truncation=None):
        self.estimator = estimator
        self.truncation = truncation

    def apply(self, msg):
        fn = msg["fn"]
        if msg["is_observed"]:
            return {"fn": fn, "value": msg["value"], "is_observed": True}
        layers = []
        while isinstance(fn, _WRAPPERS):
            layers.append(fn)
            fn = fn.base_dist
        new_fn = relaxed_twin(fn, self.estimator, self.truncation, msg["name"])
        for layer in reversed(layers):
            if isinstance(layer, torch.distributions.Independent):
                new_fn = new_fn.to_event(layer.reinterpreted_batch_ndims)
            elif isinstance(layer, MaskedDistribution):
                new_fn = new_fn.mask(layer._mask)
            else:
                new_fn = new_fn.expand(layer.batch_shape)
        return {"fn": new_fn, "value": msg["value"], "is_observed": False}


def relax(model, estimator=DEFAULT_ESTIMATOR, truncation=None):
    """``model`` with every latent site of a discrete host distribution relaxed by
    :class:`RelaxReparam` (an unregistered one, e.g. ``Categorical``, is its ``ValueError``); other
    sites, observed sites and sites already of ours are unchanged."""

    def config(msg):
        if msg["is_observed"] or msg["fn"] is None:
            return None
        fn = msg["fn"]
        while isinstance(fn, _WRAPPERS):
            fn = fn.base_dist
        if isinstance(fn, torch.distributions.Distribution) and fn.support.is_discrete:
            return RelaxReparam(estimator, truncation)
        return None

    return poutine.reparam(model, config=config)
