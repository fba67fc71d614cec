import contextlib
import warnings
from operator import attrgetter

import pyro
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.distributions.util import broadcast_shape
from pyro.infer.autoguide import AutoGuide, AutoNormal
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from pyro.ops.tensor_utils import periodic_repeat
from torch.distributions import constraints

from pyro_redge.distributions.registry import REGISTRY
from pyro_redge.estimators import DEFAULT_ESTIMATOR
from pyro_redge.infer.reparam import relax


def unwrap(fn):
    """The distribution under ``Independent``/mask/expand wrappers, and the wrappers' event dims."""
    reinterpreted = 0
    while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
        if isinstance(fn, torch.distributions.Independent):
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
    ``guide``), and :class:`~pyro.infer.autoguide.AutoNormal` on the continuous ones.


    **The model given to SVI must be relaxed too.** The guide relaxes its own copy of the model
    with :func:`~pyro_redge.infer.relax` (that copy is :attr:`model`); a model that keeps a host
    discrete latent site scores the guide's draws with the host ``log_prob``, which is not
    differentiable in the value (Pyro's ``OneHotCategorical`` takes an argmax of it): SVI would
    then run without an error and converge to a wrong posterior. Relax the model once and give it to both::

        model = pyro_redge.relax(model, ReinMax())
        guide = pyro_redge.AutoRelaxed(model, ReinMax())
        svi = SVI(model, guide, optimizer, Trace_ELBO())

    (``SVI(guide.model, guide, ...)`` is the same). When the model given to ``AutoRelaxed`` has
    host discrete latent sites, the guide warns once, when it first traces the model, with an
    :class:`UnrelaxedModelWarning` naming the sites and this fix; relaxing the model first
    silences it. A hand-written guide of our distributions needs the same relaxed model.

    Works inside plates (with subsampling) and with :class:`~pyro.infer.Predictive`;
    :meth:`median` returns the mode of each discrete site and the median of each continuous one;
    :meth:`quantiles` covers the continuous sites (quantiles of a one-hot are not meaningful).

    :param callable model: the model.
    :param estimator: the gradient estimator of the discrete sites.
    :param float init_scale: the scale of the initial noise on the discrete parameters and the
        initial scale of :class:`~pyro.infer.autoguide.AutoNormal`.
    :param int truncation: a static truncation for count sites (``None``: from ``tail_mass``).
    """

    def __init__(self, model, estimator=DEFAULT_ESTIMATOR, init_scale=0.1, truncation=None, create_plates=None):
        if not isinstance(init_scale, float) or not init_scale > 0:
            raise ValueError(f"init_scale must be a float > 0, got {init_scale!r}")
        self.estimator, self.truncation, self._init_scale = estimator, truncation, init_scale
        self._given_model = (model,)  # in a tuple, not registered as a submodule (as AutoGuide does)
        super().__init__(relax(model, estimator, truncation), create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        given = poutine.block(poutine.trace(self._given_model[0]).get_trace)(*args, **kwargs)
        warn_unrelaxed(
            {
                name: type(unwrap(site["fn"])[0]).__name__
                for name, site in given.iter_stochastic_nodes()
                if getattr(getattr(site["fn"], "support", None), "is_discrete", False)
                and not REGISTRY.is_ours(unwrap(site["fn"])[0])
            },
            "pyro_redge",
        )
        self.discrete = PyroModule()
        self._priors, self._reinterpreted = {}, {}
        continuous = []
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            prior, reinterpreted = unwrap(site["fn"])
            if not REGISTRY.is_ours(prior):
                continuous.append(name)
                continue
            init, constraint = prior.guide_parameter()
            init = init.detach()
            init = init.expand(broadcast_shape(init.shape, site["value"].shape)).clone()
            if constraint is constraints.real:
                init = init + self._init_scale * torch.randn_like(init)
            event_dim = site["fn"].event_dim
            for frame in site["cond_indep_stack"]:
                full_size = frame.full_size or frame.size
                if full_size != frame.size:
                    init = periodic_repeat(init, full_size, frame.dim - event_dim).contiguous()
            deep_setattr(self.discrete, name, PyroParam(init, constraint, event_dim))
            self._priors[name], self._reinterpreted[name] = prior, reinterpreted
        self._continuous_names = continuous
        if continuous:
            self.continuous = AutoNormal(
                poutine.block(self.model, expose=continuous),
                init_scale=self._init_scale,
                create_plates=self.create_plates,
            )

    def _check_prototype(self, part_trace):
        """Called by the inner AutoNormal: its sites must agree in shape with this guide's."""
        for name, part_site in part_trace.nodes.items():
            if part_site["type"] == "sample":
                site = self.prototype_trace.nodes[name]
                if part_site["value"].shape != site["value"].shape:
                    raise ValueError(f"AutoRelaxed: site '{name}' changed shape between traces of the model")

    def forward(self, *args, **kwargs):
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name in self._priors:
            site = self.prototype_trace.nodes[name]
            with contextlib.ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                guide = self._guide(name, attrgetter(name)(self.discrete))
                result[name] = pyro.sample(name, guide.to_event(self._reinterpreted[name]))
        if self._continuous_names:
            result.update(self.continuous(*args, **kwargs))
        return result

    def _guide(self, name, parameter):
        """The guide's distribution of the discrete site ``name`` (no wrappers) for ``parameter``."""
        return self._priors[name].guide(parameter, self.estimator, self.truncation)

    @torch.no_grad()
    def median(self, *args, **kwargs):
        """The mode of each discrete site (for a k-subset: the top k) and the median of each
        continuous one."""
        medians = {name: self._guide(name, attrgetter(name)(self.discrete)).mode for name in self._priors}
        if self._continuous_names:
            medians.update(self.continuous.median(*args, **kwargs))
        return medians

    @torch.no_grad()
    def quantiles(self, quantiles, *args, **kwargs):
        """Quantiles of the continuous sites (see :class:`~pyro.infer.autoguide.AutoNormal`)."""
        if not self._continuous_names:
            return {}
        return self.continuous.quantiles(quantiles, *args, **kwargs)
