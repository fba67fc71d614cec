import torch
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.infer.reparam.reparam import Reparam

import pyro_redge.distributions as ours
from pyro_redge.estimators import ReDGE

SUPPORTED = "OneHotCategorical, Bernoulli, Poisson, Binomial, Geometric, NegativeBinomial"


def _probs_or_logits(fn):
    """``{"logits": ...}`` or ``{"probs": ...}``, whichever parameterises the host distribution."""
    if "logits" in fn.__dict__:
        return {"logits": fn.logits}
    return {"probs": fn.probs}


def relaxed_twin(fn, estimator, truncation, name):
    """Our distribution with the parameters of the host distribution ``fn`` (no wrappers)."""
    if isinstance(fn, (ours.OneHotCategorical, ours.Bernoulli, ours.Relaxed, ours.KSubset)):
        return fn
    counts = {"estimator": estimator, "truncation": truncation}
    try:
        if isinstance(fn, torch.distributions.OneHotCategorical):
            return ours.OneHotCategorical(**_probs_or_logits(fn._categorical), estimator=estimator)
        if isinstance(fn, torch.distributions.Bernoulli):
            return ours.Bernoulli(**_probs_or_logits(fn), estimator=estimator)
        if isinstance(fn, torch.distributions.Poisson):
            return ours.Poisson(fn.rate, **counts)
        if isinstance(fn, torch.distributions.Binomial):
            return ours.Binomial(fn.total_count, **_probs_or_logits(fn), **counts)
        if isinstance(fn, torch.distributions.Geometric):
            return ours.Geometric(**_probs_or_logits(fn), **counts)
        if isinstance(fn, torch.distributions.NegativeBinomial):
            return ours.NegativeBinomial(fn.total_count, **_probs_or_logits(fn), **counts)
    except ValueError as error:
        raise ValueError(f"RelaxReparam at site '{name}': {error}") from error
    if isinstance(fn, torch.distributions.Categorical):
        raise ValueError(
            f"RelaxReparam at site '{name}': a Categorical's value is an integer index, and an index "
            "cannot carry a pathwise gradient (it is a step function of the relaxed one-hot sample). "
            "Write the site as OneHotCategorical (value @ torch.arange(K) recovers the index)."
        )
    raise ValueError(
        f"RelaxReparam at site '{name}': {type(fn).__name__} is not supported; supported: {SUPPORTED}"
    )


class RelaxReparam(Reparam):
    r"""Reparameterizes a discrete site written with Pyro's own distributions by ours, with the
    same parameters, so that an existing model runs by pathwise gradients unchanged::

        model = poutine.reparam(model, config={"z": RelaxReparam(ReinMax())})

    Supports ``OneHotCategorical``, ``Bernoulli``, ``Poisson``, ``Binomial``, ``Geometric`` and
    ``NegativeBinomial`` sites, inside plates and under ``.to_event()``, ``.expand()`` and
    ``.mask()``. Observed sites are left alone. A ``Categorical`` site is a ``ValueError`` that
    explains why (its integer value cannot carry a gradient) and points to ``OneHotCategorical``;
    so is any other distribution, and an estimator the distribution does not accept, each naming
    the site.

    :param estimator: the gradient estimator (default :class:`~pyro_redge.estimators.ReDGE`).
    :param int truncation: the static truncation of count sites (``None``: from ``tail_mass``).
    """

    def __init__(self, estimator=ReDGE(), truncation=None):
        self.estimator = estimator
        self.truncation = truncation

    def apply(self, msg):
        fn = msg["fn"]
        if msg["is_observed"]:
            return {"fn": fn, "value": msg["value"], "is_observed": True}
        layers = []
        while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
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





def relax(model, estimator=ReDGE(), truncation=None):
    """``model`` with every latent discrete site of a supported host distribution relaxed by
    :class:`RelaxReparam` (a ``Categorical`` site is the same ``ValueError``); other sites, observed
    sites and sites already of ours are unchanged."""
    from pyro import poutine

    def config(msg):
        if msg["is_observed"] or msg["fn"] is None:
            return None
        fn = msg["fn"]
        while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
            fn = fn.base_dist
        if isinstance(fn, torch.distributions.Distribution) and fn.support.is_discrete:
            return RelaxReparam(estimator, truncation)
        return None

    return poutine.reparam(model, config=config)
