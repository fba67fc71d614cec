import contextlib
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
from pyro_redge.estimators import ReDGE
from pyro_redge.infer.reparam import relax


def unwrap(fn):
    """The distribution under ``Independent``/mask/expand wrappers, and the wrappers' event dims."""
    reinterpreted = 0
    while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
        if isinstance(fn, torch.distributions.Independent):
            reinterpreted += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, reinterpreted


class AutoRelaxed(AutoGuide):
    r"""An autoguide for models with discrete latent variables: a mean-field guide of our
    distributions on every discrete latent site (the same family as the prior, with its own
    learnable parameter, initialised at the prior's plus ``init_scale`` noise where it is
    unconstrained; each registered class says which parameter, through ``guide_parameter`` and
    ``guide``), and :class:`~pyro.infer.autoguide.AutoNormal` on the continuous ones.

    The guide relaxes its copy of the model with :func:`~pyro_redge.infer.relax`; give SVI the
    relaxed model too, so that the model's discrete ``log_prob`` is differentiable in the value
    (a host ``OneHotCategorical`` takes an argmax)::

        model = pyro_redge.relax(model, ReinMax())
        guide = pyro_redge.AutoRelaxed(model, ReinMax())
        svi = SVI(model, guide, optimizer, Trace_ELBO())

    Works inside plates (with subsampling) and with :class:`~pyro.infer.Predictive`;
    :meth:`median` returns the mode of each discrete site and the median of each continuous one;
    :meth:`quantiles` covers the continuous sites (quantiles of a one-hot are not meaningful).

    :param callable model: the model.
    :param estimator: the gradient estimator of the discrete sites.
    :param float init_scale: the scale of the initial noise on the discrete parameters and the
        initial scale of :class:`~pyro.infer.autoguide.AutoNormal`.
    :param int truncation: a static truncation for count sites (``None``: from ``tail_mass``).
    """

    def __init__(self, model, estimator=ReDGE(), init_scale=0.1, truncation=None, create_plates=None):
        if not isinstance(init_scale, float) or not init_scale > 0:
            raise ValueError(f"init_scale must be a float > 0, got {init_scale!r}")
        self.estimator, self.truncation, self._init_scale = estimator, truncation, init_scale
        super().__init__(relax(model, estimator, truncation), create_plates=create_plates)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
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
