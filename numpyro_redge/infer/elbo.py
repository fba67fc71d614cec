"""An ELBO whose score-function terms use the other particles: leave-one-out baselines (RLOO) and
antithetic pairs (DisARM, for Bernoulli and categorical sites)."""

import zlib
from collections import defaultdict

import jax
import jax.numpy as jnp
from jax import random
from jax.lax import stop_gradient
from numpyro.distributions import ExpandedDistribution, Independent, MaskedDistribution
from numpyro.handlers import seed
from numpyro.infer.elbo import ELBO, MultiFrameTensor, get_nonreparam_deps
from numpyro.infer.util import get_importance_trace
from numpyro.primitives import Messenger
from numpyro.util import _validate_model, check_model_guide_match, not_jax_tracer

from numpyro_redge._math import tree_log_odds
from numpyro_redge.distributions import Bernoulli
from numpyro_redge.estimators.score_function import DisARM, antithetic_pair
from redge_core.category_tree import pair_estimate, pair_log_odds_agree, tree_nodes
from redge_core.estimator_options import check_antithetic_particles, check_num_particles
from redge_core.wrappers import core_and_masks


class ScoreFunction_ELBO(ELBO):
    r"""The ELBO of :class:`~numpyro.infer.TraceGraph_ELBO` (reparameterized sites by their pathwise
    gradient, the others by the score function of their downstream cost, found by provenance
    tracking), whose score-function terms use the other particles instead of none:

    - a site with :class:`~numpyro_redge.estimators.RLOO`, or a host site without ``rsample``
      (NumPyro's own ``Categorical``, ``Poisson``, ...), gets the leave-one-out baseline: particle
      :math:`i`'s downstream cost minus the mean of the other particles' costs at the same plate
      index,

      .. math:: \hat g = \frac{1}{S} \sum_{i=1}^{S} \Big(f_i - \frac{1}{S-1} \sum_{j \ne i} f_j\Big)
          \nabla_\theta \log q_\theta(z_i);

    - a site with :class:`~numpyro_redge.estimators.DisARM` (a Bernoulli or a categorical) is drawn in
      antithetic pairs, particle :math:`i` with particle :math:`i + S/2`, and gets DisARM's pair
      estimate (for a categorical, through a binary tree over its categories, with leave-one-out
      baselines below the node where a pair's paths part).

    Both are unbiased estimates of the ELBO's gradient (the test suite checks them against exact
    enumeration), and their variance falls with ``num_particles`` at the cost of that many model
    evaluations per step. The particles are mapped with ``jax.vmap`` (or ``jax.lax.map`` with
    ``vectorize_particles=False``); plates, subsampling scales, masks and ``jit`` are supported.

    :param int num_particles: the particles :math:`S` per step, at least 2 (even with DisARM sites).
    :param vectorize_particles: as for every NumPyro ELBO.

    **Example**::

        def guide(x):
            with numpyro.plate("data", len(x)):
                numpyro.sample("z", OneHotCategorical(logits=encoder(x), estimator=RLOO()))

        svi = SVI(model, guide, optax.adam(1e-3), ScoreFunction_ELBO(num_particles=4))

    **References**

    [1] `Buy 4 REINFORCE Samples, Get a Baseline for Free!`, Wouter Kool, Herke van Hoof, Max
        Welling (ICLR 2019 workshop)
    [2] `DisARM: An Antithetic Gradient Estimator for Binary Latent Variables`, Zhe Dong, Andriy
        Mnih, George Tucker (NeurIPS 2020); `Coupled Gradient Estimators for Discrete Latent
        Variables`, the same authors (NeurIPS 2021)
    [3] `Gradient Estimation Using Stochastic Computation Graphs`, John Schulman, Nicolas Heess,
        Theophane Weber, Pieter Abbeel (NeurIPS 2015)
    """

    can_infer_discrete = True

    def __init__(self, num_particles=4, vectorize_particles=True):
        check_num_particles(num_particles, type(self).__name__)
        super().__init__(num_particles=num_particles, vectorize_particles=vectorize_particles)

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The negative ELBO, averaged over the particles, whose gradient is the estimator above."""
        num_particles = self.num_particles
        particle_key, pair_key, subsample_key = random.split(rng_key, 3)
        half = (num_particles + 1) // 2
        pair_keys = random.split(pair_key, half)
        particles = (
            random.split(particle_key, num_particles),
            jnp.concatenate([pair_keys, pair_keys])[:num_particles],
            jnp.arange(num_particles) >= half,
        )

        def particle(inputs):
            key, pair, second = inputs
            model_seed, guide_seed = random.split(key)
            with antithetic_pair(pair, second):
                model_trace, guide_trace = get_importance_trace(
                    seed(_SharedSubsamples(model, subsample_key), model_seed),
                    seed(_SharedSubsamples(guide, subsample_key), guide_seed),
                    args,
                    kwargs,
                    param_map,
                )
            check_model_guide_match(model_trace, guide_trace)
            _validate_model(model_trace, plate_warning="strict")
            latents = {
                name: site["value"]
                for name, site in guide_trace.items()
                if site["type"] == "sample" and not site.get("is_observed", False)
            }
            model_deps, guide_deps = get_nonreparam_deps(model, guide, args, kwargs, param_map, latents=latents)
            elbo = jnp.array(0.0)
            costs = defaultdict(MultiFrameTensor)
            for name, site in model_trace.items():
                if site["type"] == "sample":
                    elbo = elbo + jnp.sum(site["log_prob"])
                    for key in model_deps[name]:
                        costs[key].add((site["cond_indep_stack"], site["log_prob"]))
            for name, site in guide_trace.items():
                if site["type"] == "sample":
                    log_prob_sum = jnp.sum(site["log_prob"])
                    elbo = elbo - (log_prob_sum if site["fn"].has_rsample else stop_gradient(log_prob_sum))
                    for key in guide_deps[name]:
                        costs[key].add((site["cond_indep_stack"], -site["log_prob"]))
            leave_one_out, antithetic = {}, {}
            for name, cost in costs.items():
                site = guide_trace[name]
                cost = cost.sum_to(site["cond_indep_stack"])
                core, masks = core_and_masks(
                    site["fn"], Independent, MaskedDistribution, transparent=(ExpandedDistribution,)
                )
                if isinstance(getattr(core, "estimator", None), DisARM):
                    check_antithetic_particles(num_particles)
                    antithetic[name] = _disarm_terms(site, core, masks, cost)
                else:
                    # The score of the site's own density, unscaled: the cost already carries the
                    # site's scale (subsampling), which site["log_prob"] holds too (NumPyro's own
                    # TraceGraph_ELBO multiplies both, so its score terms count the scale twice).
                    score = site["fn"].log_prob(site["value"])
                    leave_one_out[name] = (score, jnp.broadcast_to(cost, jnp.shape(score)))
            return elbo, leave_one_out, antithetic

        elbos, leave_one_out, antithetic = self.vectorize_particles_fn(particle, particles)
        surrogate = jnp.array(0.0)
        for score, cost in leave_one_out.values():
            others = _leave_one_out_mean(cost, num_particles)
            surrogate = surrogate + jnp.sum(score * stop_gradient(cost - others))
        for name, terms in antithetic.items():
            surrogate = surrogate + _disarm_surrogate(name, *terms, num_particles)
        surrogate = surrogate / num_particles
        return -(jnp.mean(elbos) + surrogate - stop_gradient(surrogate))


#: The same class under Pyro's name for its compiled twin, so that code written for both hosts reads
#: alike: NumPyro's ``SVI`` compiles every ELBO with ``jax.jit`` already.
JitScoreFunction_ELBO = ScoreFunction_ELBO


class _SharedSubsamples(Messenger):
    """Every particle subsamples a plate with the same key (derived from the plate's name), as
    Pyro's vectorized particles share one plate: the leave-one-out baselines then compare the same
    data points, and DisARM's pairs see the same data, hence the same log-odds."""

    def __init__(self, fn, key):
        self.key = key
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["value"] is None and msg["kwargs"].get("rng_key") is None:
            msg["kwargs"]["rng_key"] = random.fold_in(self.key, zlib.crc32(msg["name"].encode()))


def _leave_one_out_mean(cost, num_particles):
    """Each particle's baseline: the mean cost of the other particles (the particles on axis 0)."""
    return (cost.sum(0, keepdims=True) - cost) / (num_particles - 1)


def _disarm_terms(site, core, masks, cost):
    """Per particle: the category tree's log-odds (the core's batch, then the node axis), the sampled
    category and the cost (with a node axis of 1), the factor (the masks) DisARM's weight carries, and
    the row's scale for the check that the two members of a pair share their log-odds."""
    log_probs = core._log_probs
    log_odds = tree_log_odds(log_probs)
    # the row's scale for the pair check: 1 + its largest finite log-probability magnitude
    scale = 1 + jnp.max(jnp.where(jnp.isfinite(log_probs), jnp.abs(stop_gradient(log_probs)), 0), -1, keepdims=True)
    shape = jnp.shape(log_odds)[:-1]
    category = (site["value"] if isinstance(core, Bernoulli) else jnp.argmax(site["value"], -1)).astype(jnp.int32)
    inner = len(shape) - len(site["fn"].batch_shape)
    if shape[: len(shape) - inner] != tuple(site["fn"].batch_shape):
        # an ExpandedDistribution: the core's log-odds broadcast to the site's batch
        shape = tuple(site["fn"].batch_shape) + shape[len(shape) - inner :]
        log_odds = jnp.broadcast_to(log_odds, shape + jnp.shape(log_odds)[-1:])
        scale = jnp.broadcast_to(scale, shape + (1,))

    def on_nodes(value, missing):
        """``value`` on the core's batch, with the node axis (of size 1) last."""
        value = jnp.asarray(value)
        return jnp.broadcast_to(value.reshape(jnp.shape(value) + (1,) * missing), shape)[..., None]

    # The cost carries the site's scale already; a masked entry has no score (as for RLOO).
    factor = jnp.ones(shape + (1,))
    for mask, missing in masks:
        factor = factor * on_nodes(mask, missing)
    return log_odds, jnp.broadcast_to(category, shape)[..., None], on_nodes(cost, inner), factor, scale


def _disarm_surrogate(name, log_odds, category, cost, factor, scale, num_particles):
    """DisARM's pair estimate as a surrogate ``<φ, stop_gradient(weight)>`` on the category tree's
    log-odds φ for each particle (both members of a pair carry the pair's estimate; the ELBO divides
    by the particle count). The score terms below the branching node take the leave-one-out baseline."""
    half = num_particles // 2

    def partner(value):
        return jnp.roll(value, half, axis=0)

    detached = stop_gradient(log_odds)
    agree = pair_log_odds_agree(detached, partner(detached), jnp.finfo(detached.dtype).eps, scale)
    if not_jax_tracer(log_odds) and not bool(jnp.all(agree)):
        raise ValueError(
            f"DisARM site {name!r}: its logits differ between the members of an antithetic pair of "
            "particles; DisARM needs logits that depend on parameters and data only, not on other "
            "latent draws (use RLOO for such a site)"
        )
    baseline = _leave_one_out_mean(cost, num_particles)
    levels, positions = (jnp.asarray(nodes, dtype=jnp.int32) for nodes in tree_nodes(jnp.shape(log_odds)[-1] + 1))
    weight = factor * pair_estimate(
        levels,
        positions,
        category,
        partner(category),
        cost,
        partner(cost),
        baseline,
        partner(baseline),
        jax.nn.sigmoid(detached),
        jax.nn.sigmoid(jnp.abs(detached)),
    )
    # Under jit the pairs cannot be checked eagerly: a mismatch makes the gradient NaN, never wrong.
    weight = jnp.where(agree, weight, jnp.nan)
    # A branch of probability 0 or 1 (a masked category) has infinite log-odds and a zero weight.
    return jnp.sum(jnp.where(jnp.isfinite(detached), log_odds, 0.0) * stop_gradient(weight))
