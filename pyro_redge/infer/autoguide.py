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

import pyro_redge.distributions as ours
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


def variational_family(prior, estimator, truncation):
    """For a site whose prior is ``prior`` (ours, unwrapped): the learnable parameter's initial
    value (the prior's own, in the value's shape), its constraint, and the guide's builder."""
    if isinstance(prior, ours.OneHotCategorical):
        return prior._log_probs, constraints.real, lambda p: ours.OneHotCategorical(logits=p, estimator=estimator)
    if isinstance(prior, ours.Bernoulli):
        log_probs = prior._log_probs
        return log_probs[..., 1] - log_probs[..., 0], constraints.real, lambda p: ours.Bernoulli(logits=p, estimator=estimator)
    if isinstance(prior, ours.KSubset):
        return prior.logits, constraints.real, lambda p: ours.KSubset(p, prior.k, estimator)
    if isinstance(prior, ours.Poisson):
        return prior.rate, constraints.positive, lambda p: ours.Poisson(p, estimator, truncation)
    if isinstance(prior, ours.Binomial):
        return prior.logits, constraints.real, lambda p: ours.Binomial(prior.total_count, logits=p, estimator=estimator, truncation=truncation)
    if isinstance(prior, ours.Geometric):
        return prior.logits, constraints.real, lambda p: ours.Geometric(logits=p, estimator=estimator, truncation=truncation)
    if isinstance(prior, ours.NegativeBinomial):
        return prior.logits, constraints.real, lambda p: ours.NegativeBinomial(prior.total_count, logits=p, estimator=estimator, truncation=truncation)
    raise ValueError(f"AutoRelaxed has no variational family for {type(prior).__name__}")


class AutoRelaxed(AutoGuide):
    r"""An autoguide for models with discrete latent variables: a mean-field guide of our
    distributions on every discrete latent site (the same family as the prior, with its own
    learnable parameters, initialised at the prior's plus ``init_scale`` noise), and
    :class:`~pyro.infer.autoguide.AutoNormal` on the continuous ones.

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
        self._builders, self._reinterpreted = {}, {}
        continuous = []
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            prior, reinterpreted = unwrap(site["fn"])
            if not isinstance(prior, (ours.OneHotCategorical, ours.Bernoulli, ours.Relaxed, ours.KSubset)):
                continuous.append(name)
                continue
            init, constraint, builder = variational_family(prior, self.estimator, self.truncation)
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
            self._builders[name], self._reinterpreted[name] = builder, reinterpreted
        self._continuous_names = continuous
        if continuous:
            self.continuous = AutoNormal(
                poutine.block(self.model, expose=continuous), init_scale=self._init_scale, create_plates=self.create_plates
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
        for name, builder in self._builders.items():
            site = self.prototype_trace.nodes[name]
            with contextlib.ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                parameter = attrgetter(name)(self.discrete)
                result[name] = pyro.sample(name, builder(parameter).to_event(self._reinterpreted[name]))
        if self._continuous_names:
            result.update(self.continuous(*args, **kwargs))
        return result

    @torch.no_grad()
    def median(self, *args, **kwargs):
        """The mode of each discrete site (for a k-subset: the top k) and the median of each
        continuous one."""
        medians = {}
        for name, builder in self._builders.items():
            guide = builder(attrgetter(name)(self.discrete))
            if isinstance(guide, ours.OneHotCategorical):
                medians[name] = torch.nn.functional.one_hot(guide.logits.argmax(-1), guide.event_shape[0]).to(guide.logits.dtype)
            elif isinstance(guide, ours.Bernoulli):
                medians[name] = (guide.logits > 0).to(guide.logits.dtype)
            elif isinstance(guide, ours.KSubset):
                medians[name] = torch.zeros_like(guide.logits).scatter_(-1, guide.logits.topk(guide.k).indices, 1.0)
            else:
                values, log_pmf = guide._support_and_log_pmf()
                medians[name] = values[log_pmf.argmax(-1)]
        if self._continuous_names:
            medians.update(self.continuous.median(*args, **kwargs))
        return medians

    @torch.no_grad()
    def quantiles(self, quantiles, *args, **kwargs):
        """Quantiles of the continuous sites (see :class:`~pyro.infer.autoguide.AutoNormal`)."""
        if not self._continuous_names:
            return {}
        return self.continuous.quantiles(quantiles, *args, **kwargs)
