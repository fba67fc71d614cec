"""The binary-tree DisARM for categoricals (redge_core.category_tree), in exact arithmetic: the pair
estimate's expectation over every joint state of the antithetic bits against the exact gradient, its
variance against RLOO's with the same two evaluations, and the tree's layout."""

import itertools

import numpy as np
import pytest
from scipy.special import expit, log_softmax, logsumexp

from redge_core.category_tree import pair_estimate, tree_levels, tree_nodes


def node_log_odds(logits):
    """Reference log-odds of each node, from the definition: the log-mass of the categories below
    the right child minus that below the left (category z is below node (m, j) when z >> m == j,
    on the side of its bit (z >> (m − 1)) & 1)."""
    categories = np.arange(len(logits))
    levels, positions = tree_nodes(len(logits))
    log_odds = []
    for level, position in zip(levels, positions, strict=True):
        below = (categories >> level) == position
        side = (categories >> (level - 1)) & 1
        log_odds.append(logsumexp(logits[below & (side == 1)]) - logsumexp(logits[below & (side == 0)]))
    return np.array(log_odds)


def descend(num_categories, bits):
    """The category the bits (one per node) lead to from the root."""
    levels = tree_levels(num_categories)
    starts = np.concatenate([[0], np.cumsum(levels)])
    position = 0
    for level in range(len(levels), 0, -1):
        if position < levels[level - 1]:
            position = 2 * position + bits[starts[level - 1] + position]
        else:
            position = 2 * position
    return position


def pair_states(log_odds):
    """Every joint state of the antithetic bits (1[u < σ(φ)], 1[1 − u < σ(φ)]) of all nodes, with
    its probability: per node (0, 0) w.p. max(0, 1 − 2p), (1, 0) and (0, 1) w.p. min(p, 1 − p)
    each, (1, 1) w.p. max(0, 2p − 1)."""
    p = expit(log_odds)
    per_node = [
        [(max(0.0, 1 - 2 * q), 0, 0), (min(q, 1 - q), 1, 0), (min(q, 1 - q), 0, 1), (max(0.0, 2 * q - 1), 1, 1)]
        for q in p
    ]
    for states in itertools.product(*per_node):
        probability = np.prod([state[0] for state in states])
        if probability > 0:
            yield probability, [state[1] for state in states], [state[2] for state in states]


def log_odds_jacobian(logits):
    """``d node_log_odds / d logits`` (categories × nodes), by central differences (step 1e-6)."""
    step = 1e-6
    return np.array(
        [
            (node_log_odds(logits + step * e) - node_log_odds(logits - step * e)) / (2 * step)
            for e in np.eye(len(logits))
        ]
    )


def estimate_moments(logits, cost):
    """Mean and mean squared norm of the pair estimate in the logits, over every joint state."""
    num_categories = len(logits)
    log_odds = node_log_odds(logits)
    jacobian = log_odds_jacobian(logits)
    levels, positions = (np.array(nodes) for nodes in tree_nodes(num_categories))
    mean, square = np.zeros(num_categories), 0.0
    for probability, bits, partner_bits in pair_states(log_odds):
        first, second = descend(num_categories, bits), descend(num_categories, partner_bits)
        weight = pair_estimate(
            levels,
            positions,
            np.array([first]),
            np.array([second]),
            np.array([cost[first]]),
            np.array([cost[second]]),
            np.array([cost[second]]),  # with two particles the leave-one-out baseline is the partner
            np.array([cost[first]]),
            expit(log_odds),
            expit(np.abs(log_odds)),
        )
        gradient = jacobian @ weight
        mean += probability * gradient
        square += probability * gradient @ gradient
    return mean, square


PROBLEMS = [(num_categories, seed) for num_categories in range(2, 8) for seed in range(3)]


@pytest.mark.parametrize("num_categories, seed", PROBLEMS)
def test_pair_estimate_is_exactly_unbiased_and_beats_two_sample_rloo(num_categories, seed):
    rng = np.random.default_rng(seed)
    logits, cost = 1.5 * rng.normal(size=num_categories), 2.0 * rng.normal(size=num_categories)
    probs = np.exp(log_softmax(logits))
    exact = probs * (cost - probs @ cost)
    mean, square = estimate_moments(logits, cost)
    # exact sums over every state; the tolerance is the central differences' error of the Jacobian
    np.testing.assert_allclose(mean, exact, atol=1e-8)
    # RLOO with the same two evaluations: ½ (f(a) − f(b)) (e_a − e_b) over independent a, b
    # (its squared norm is ½ (f(a) − f(b))² for a ≠ b)
    rloo_square = sum(
        probs[a] * probs[b] * 0.5 * (cost[a] - cost[b]) ** 2
        for a in range(num_categories)
        for b in range(num_categories)
    )
    # Exact variances; on these 18 problems the ratio is 0.22-0.96 (0.22-0.59 for K = 2).
    assert square - exact @ exact < 0.97 * (rloo_square - exact @ exact)


@pytest.mark.parametrize("num_categories", [2, 3, 4])
def test_two_pairs_with_leave_one_out_baselines_are_exactly_unbiased(num_categories):
    """Four particles in two independent pairs, each particle's score terms baselined by the mean
    cost of the other three (as ScoreFunction_ELBO does): the mean of the two pairs' estimates,
    over every joint state of both pairs' bits, is the exact gradient."""
    rng = np.random.default_rng(num_categories)
    logits, cost = 1.5 * rng.normal(size=num_categories), 2.0 * rng.normal(size=num_categories)
    probs = np.exp(log_softmax(logits))
    log_odds = node_log_odds(logits)
    jacobian = log_odds_jacobian(logits)
    levels, positions = (np.array(nodes) for nodes in tree_nodes(num_categories))
    pairs = [
        (probability, descend(num_categories, bits), descend(num_categories, partner_bits))
        for probability, bits, partner_bits in pair_states(log_odds)
    ]
    mean = np.zeros(num_categories)
    for (first_probability, a, b), (second_probability, c, d) in itertools.product(pairs, pairs):
        costs = cost[[a, b, c, d]]
        baselines = (costs.sum() - costs) / 3
        estimates = [
            pair_estimate(
                levels,
                positions,
                np.array([one]),
                np.array([other]),
                costs[[i]],
                costs[[j]],
                baselines[[i]],
                baselines[[j]],
                expit(log_odds),
                expit(np.abs(log_odds)),
            )
            for one, other, i, j in [(a, b, 0, 1), (c, d, 2, 3)]
        ]
        mean += first_probability * second_probability * (jacobian @ (0.5 * (estimates[0] + estimates[1])))
    np.testing.assert_allclose(mean, probs * (cost - probs @ cost), atol=1e-8)


@pytest.mark.parametrize("num_categories", [1, 2, 3, 5, 6, 7, 8, 100])
def test_the_tree_has_one_node_per_category_but_one_and_logarithmic_depth(num_categories):
    levels, positions = tree_nodes(num_categories)
    assert len(levels) == len(positions) == num_categories - 1
    assert len(tree_levels(num_categories)) == int(np.ceil(np.log2(num_categories)))
    # every category is reached by its own bits, and the bits of its path are exactly its index's
    for category in range(num_categories):
        bits = [(category >> (level - 1)) & 1 for level in levels]
        assert descend(num_categories, bits) == category
