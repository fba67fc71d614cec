"""An ELBO whose score-function terms use the other particles: leave-one-out baselines (RLOO) and
antithetic pairs (DisARM, for Bernoulli and categorical sites)."""

from collections import defaultdict

import torch
from pyro.distributions import MaskedDistribution
from pyro.distributions.util import is_identically_zero
from pyro.infer.tracegraph_elbo import JitTraceGraph_ELBO, TraceGraph_ELBO
from pyro.infer.util import MultiFrameTensor, is_validation_enabled
from pyro.ops.provenance import detach_provenance, get_provenance
from pyro.util import ignore_jit_warnings

from pyro_redge._math import tree_log_odds
from pyro_redge.distributions import Bernoulli
from pyro_redge.estimators.score_function import DisARM, antithetic_particles
from redge_core.category_tree import pair_estimate, pair_log_odds_agree, tree_nodes
from redge_core.estimator_options import check_num_particles
from redge_core.wrappers import core_and_masks

#: The name of the plate Pyro's ELBO puts around the model and the guide to vectorize the particles.
PARTICLE_PLATE = "num_particles_vectorized"


class ScoreFunction_ELBO(TraceGraph_ELBO):
    r"""The ELBO of :class:`~pyro.infer.TraceGraph_ELBO` (reparameterized sites by their pathwise
    gradient, the others by the score function of their downstream cost, found by provenance
    tracking), whose score-function terms use the other particles instead of a learnt baseline:

    - a site with :class:`~pyro_redge.estimators.RLOO`, or a host site without ``rsample`` (Pyro's
      own ``Categorical``, ``Poisson``, ...), gets the leave-one-out baseline: particle :math:`i`'s
      downstream cost minus the mean of the other particles' costs at the same plate index,

      .. math:: \hat g = \frac{1}{S} \sum_{i=1}^{S} \Big(f_i - \frac{1}{S-1} \sum_{j \ne i} f_j\Big)
          \nabla_\theta \log q_\theta(z_i);

    - a site with :class:`~pyro_redge.estimators.DisARM` (a Bernoulli or a categorical) is drawn in
      antithetic pairs, particle :math:`i` with particle :math:`i + S/2`, and gets DisARM's pair
      estimate (for a categorical, through a binary tree over its categories, with leave-one-out
      baselines below the node where a pair's paths part).

    Both are unbiased estimates of the ELBO's gradient (the test suite checks them against exact
    enumeration), and their variance falls with ``num_particles`` at the cost of that many model
    evaluations per step. The particles are vectorized (an outermost plate, as
    ``Trace_ELBO(vectorize_particles=True)``), so the model and guide must broadcast over a leftmost
    batch dimension: give ``max_plate_nesting`` or let Pyro guess it once. Plates, subsampling
    scales and masks are respected; :class:`JitScoreFunction_ELBO` compiles the step.

    :param int num_particles: the particles :math:`S` per step, at least 2 (even with DisARM sites).
    :param max_plate_nesting: as for every Pyro ELBO.

    **Example**::

        def guide(x):
            with pyro.plate("data", len(x)):
                pyro.sample("z", OneHotCategorical(logits=encoder(x), estimator=RLOO()))

        svi = SVI(model, guide, Adam({"lr": 1e-3}), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `Buy 4 REINFORCE Samples, Get a Baseline for Free!`, Wouter Kool, Herke van Hoof, Max
        Welling (ICLR 2019 workshop)
    [2] `DisARM: An Antithetic Gradient Estimator for Binary Latent Variables`, Zhe Dong, Andriy
        Mnih, George Tucker (NeurIPS 2020); `Coupled Gradient Estimators for Discrete Latent
        Variables`, the same authors (NeurIPS 2021)
    [3] `Gradient Estimation Using Stochastic Computation Graphs`, John Schulman, Nicolas Heess,
        Theophane Weber, Pieter Abbeel (NeurIPS 2015)
    """

    def __init__(self, num_particles=4, max_plate_nesting=float("inf"), vectorize_particles=True, **kwargs):
        check_num_particles(num_particles, type(self).__name__)
        if not vectorize_particles:
            raise ValueError(
                f"vectorize_particles of {type(self).__name__} must be True: the baselines and DisARM's "
                "pairs are formed across the vectorized particle axis"
            )
        super().__init__(
            num_particles=num_particles, max_plate_nesting=max_plate_nesting, vectorize_particles=True, **kwargs
        )

    def _get_trace(self, model, guide, args, kwargs):
        with antithetic_particles(self.num_particles):
            return super()._get_trace(model, guide, args, kwargs)

    def _loss_and_surrogate_loss_particle(self, model_trace, guide_trace):
        return _score_function_elbo(model_trace, guide_trace, self.num_particles)


class JitScoreFunction_ELBO(ScoreFunction_ELBO, JitTraceGraph_ELBO):
    """:class:`ScoreFunction_ELBO` compiled with :func:`torch.jit.trace`, with the restrictions of
    :class:`~pyro.infer.JitTraceGraph_ELBO` (static model structure, tensors passed in ``*args``)."""


def _score_function_elbo(model_trace, guide_trace, num_particles):
    """``(elbo, surrogate_loss)`` of the vectorized traces: Pyro's TraceGraph surrogate with the
    leave-one-out or DisARM score terms."""
    elbo = surrogate_elbo = 0.0
    downstream_costs = defaultdict(MultiFrameTensor)
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            elbo = elbo + site["log_prob_sum"]
            surrogate_elbo = surrogate_elbo + site["log_prob_sum"]
            for key in get_provenance(site["log_prob_sum"]):
                downstream_costs[key].add((site["cond_indep_stack"], site["log_prob"]))
    for site in guide_trace.nodes.values():
        if site["type"] == "sample":
            elbo = elbo - site["log_prob_sum"]
            entropy_term = site["score_parts"].entropy_term
            if not is_identically_zero(entropy_term):
                surrogate_elbo = surrogate_elbo - entropy_term.sum()
            for key in get_provenance(site["log_prob_sum"]):
                downstream_costs[key].add((site["cond_indep_stack"], -site["log_prob"]))
    for name, cost in downstream_costs.items():
        site = guide_trace.nodes[name]
        dim = _particle_dim(site)
        cost = _on_particle_axis(cost.sum_to(site["cond_indep_stack"]), dim, num_particles)
        core, masks = core_and_masks(site["fn"], torch.distributions.Independent, MaskedDistribution)
        if isinstance(getattr(core, "estimator", None), DisARM):
            surrogate_elbo = surrogate_elbo + _disarm_surrogate(name, site, core, masks, cost, dim, num_particles)
        else:
            others = _leave_one_out_mean(cost, dim, num_particles)
            surrogate_elbo = surrogate_elbo + (site["score_parts"].score_function * (cost - others).detach()).sum()
    return detach_provenance(elbo), detach_provenance(-surrogate_elbo)


def _leave_one_out_mean(cost, dim, num_particles):
    """Each particle's baseline: the mean cost of the other particles along the particle axis ``dim``."""
    return (cost.sum(dim, keepdim=True) - cost) / (num_particles - 1)


def _particle_dim(site):
    for frame in site["cond_indep_stack"]:
        if frame.name == PARTICLE_PLATE:
            return frame.dim
    raise ValueError(f"site {site['name']!r} is outside the particle plate of ScoreFunction_ELBO")


def _on_particle_axis(cost, dim, num_particles):
    """``cost`` with at least ``-dim`` dimensions and the particle axis ``dim`` of full size."""
    cost = torch.as_tensor(cost)
    cost = cost.reshape((1,) * max(0, -dim - cost.dim()) + cost.shape)
    shape = list(cost.shape)
    shape[dim] = num_particles
    return cost.expand(shape)


def _disarm_surrogate(name, site, core, masks, cost, dim, num_particles):
    """DisARM's pair estimate as a surrogate ``<φ, stop_gradient(weight)>`` on the category tree's
    log-odds φ for each particle (both members of a pair carry the pair's estimate; the ELBO divides
    by the particle count). The score terms below the branching node take the leave-one-out baseline."""
    log_probs = core._log_probs
    with ignore_jit_warnings():  # the tree's layout depends on the number of categories only
        log_odds = tree_log_odds(log_probs)
    category = (site["value"] if isinstance(core, Bernoulli) else site["value"].argmax(-1)).long()
    inner = log_odds.dim() - 1 - len(site["fn"].batch_shape)
    axis = dim - inner - 1
    half = num_particles // 2

    def on_nodes(tensor, inner_dims):
        """``tensor`` on the core's batch, with the node axis (of size 1) last."""
        tensor = torch.as_tensor(tensor, device=log_odds.device)
        return tensor.reshape(tensor.shape + (1,) * (inner_dims + 1))

    cost = on_nodes(cost, inner)
    baseline = _leave_one_out_mean(cost, axis, num_particles)
    category = category[..., None]
    with ignore_jit_warnings():  # the tree is static: its layout is a constant of a traced step
        nodes = tree_nodes(log_odds.shape[-1] + 1)
        levels, positions = (torch.tensor(layout, dtype=torch.long, device=log_odds.device) for layout in nodes)
    detached = log_odds.detach()

    def partner(tensor):
        return tensor.roll(half, axis)

    weight = pair_estimate(
        levels,
        positions,
        category,
        partner(category),
        cost,
        partner(cost),
        baseline,
        partner(baseline),
        torch.sigmoid(detached),
        torch.sigmoid(detached.abs()),
    )
    # The cost carries the site's scale already; a masked entry has no score (as Pyro's own).
    if site["mask"] is not None:
        weight = weight * on_nodes(site["mask"], inner)
    for mask, missing in masks:
        weight = weight * on_nodes(mask, missing)
    log_probs = log_probs.detach()
    scale = 1 + torch.where(log_probs.isfinite(), log_probs.abs(), 0).amax(-1, keepdim=True)
    agree = pair_log_odds_agree(detached, partner(detached), torch.finfo(detached.dtype).eps, scale)
    if is_validation_enabled() and not torch.jit.is_tracing():
        if not agree.all():
            raise ValueError(
                f"DisARM site {name!r}: its logits differ between the members of an antithetic pair of "
                "particles; DisARM needs logits that depend on parameters and data only, not on other "
                "latent draws (use RLOO for such a site)"
            )
    weight = torch.where(agree, weight, torch.nan)
    # A branch of probability 0 or 1 (a masked category) has infinite log-odds and a zero weight.
    return (log_odds.masked_fill(~detached.isfinite(), 0.0) * weight.detach()).sum()
