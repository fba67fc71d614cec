r"""The binary tree through which :class:`DisARM` draws a categorical, and its pair estimate, shared by
both hosts (plain Python on sizes; the estimate is written with array operators only, so either
host's arrays go through it).

A categorical over ``K`` categories is drawn as ``K − 1`` independent bits, one per node of a binary
tree over the categories' indices: level 1 pairs the categories ``(0, 1), (2, 3), …``, level 2 pairs
level 1's results, and so on, an odd last element being carried up unpaired. The node at level
:math:`m` and position :math:`j` chooses between its children :math:`2j` and :math:`2j + 1` of level
:math:`m - 1`; its bit :math:`b = 1[u < \sigma(\phi)]` goes right with the log-odds

.. math:: \phi_{m,j} = \log \sum_{z \in \text{right}} \pi_z - \log \sum_{z \in \text{left}} \pi_z,

so that category :math:`z` is drawn with probability :math:`\pi_z` exactly (the product of the
branch probabilities on its path). Category :math:`z`'s path passes through the node at position
:math:`z \gg m` of each level :math:`m` whose position pairs two elements, with the bit
:math:`(z \gg (m - 1)) \mathbin{\&} 1`; depth :math:`\lceil \log_2 K \rceil`, ``K − 1`` nodes, O(K)
work. For ``K = 2`` the tree is one node and the draw is the binary DisARM's.

**References:** Dong, Mnih and Tucker, *Coupled Gradient Estimators for Discrete Latent Variables*,
NeurIPS 2021 (the binary-tree reparameterization of a categorical and its DisARM estimator).
"""


def tree_levels(num_categories):
    """The number of nodes of each level, from level 1 (pairs of categories) up to the root: the
    ``num_categories − 1`` nodes of the tree, in the order the hosts lay them out."""
    levels, count = [], num_categories
    while count > 1:
        levels.append(count // 2)
        count -= count // 2
    return levels


def tree_nodes(num_categories):
    """``(levels, positions)``: each node's level :math:`m \\ge 1` and position :math:`j` in it, as
    two lists in the hosts' layout (level 1 first)."""
    levels, positions = [], []
    for level, count in enumerate(tree_levels(num_categories), start=1):
        levels += [level] * count
        positions += list(range(count))
    return levels, positions


def tree_descent(num_categories):
    """``(pairs, start)`` per level from the root down: the level's node count and the index of its
    first node in the hosts' layout, the plan a draw follows from the root to a category."""
    levels = tree_levels(num_categories)
    starts = [sum(levels[:level]) for level in range(len(levels))]
    return list(zip(reversed(levels), reversed(starts), strict=True))


#: How far apart, in units of the dtype's epsilon relative to the row's scale (1 + the largest finite
#: log-probability magnitude), the two members' log-odds may be and still count as one: the members
#: compute them from the same parameters and data, but a host's vectorised reductions (a softmax
#: over each particle's row) can round rows differently.
LOG_ODDS_TOLERANCE = 64


def pair_log_odds_agree(log_odds, partner_log_odds, eps, scale):
    """Whether the two members of each pair have the same log-odds up to rounding: equal, or within
    :data:`LOG_ODDS_TOLERANCE` ``× eps × scale``, with ``eps`` that of the log-odds' dtype and
    ``scale`` (finite, broadcasting against the node axis) ``1 +`` the row's largest finite
    log-probability magnitude. Infinite log-odds (a branch of probability 0 or 1) must be equal. A
    genuine dependence on other latent draws, which differ within a pair, moves them far more; one
    smaller than the tolerance would pass, its bias on the gradient as small (loose in half
    precision: a sixteenth of the scale in float16, half of it in bfloat16)."""
    return (log_odds == partner_log_odds) | (abs(log_odds - partner_log_odds) <= LOG_ODDS_TOLERANCE * eps * scale)


def pair_estimate(
    node_levels,
    node_positions,
    category,
    partner,
    cost,
    partner_cost,
    baseline,
    partner_baseline,
    right_probability,
    branch_factor,
):
    r"""The weights :math:`w` of one antithetic pair's estimate :math:`\sum_n w_n \nabla \phi_n` on the
    tree's nodes (Dong, Mnih and Tucker 2021, the binary-tree DisARM; the same value for either
    member as ``category``, so each member may carry it):

    .. math:: w_n = \tfrac12 \Big( 1[n \in P \cap \tilde P,\ b_n \ne \tilde b_n]\,(f - \tilde f)\,
        (-1)^{\tilde b_n} \sigma(|\phi_n|)
        + 1[n \in P \setminus \tilde P]\,(f - c)(b_n - \sigma(\phi_n))
        + 1[n \in \tilde P \setminus P]\,(\tilde f - \tilde c)(\tilde b_n - \sigma(\phi_n)) \Big),

    with :math:`P, \tilde P` the two categories' paths: DisARM's term where the paths part, and on
    each path's own nodes below that a score term whose baseline :math:`c` does not depend on that
    node's uniform (the partner's cost, or the leave-one-out mean over all particles). Every
    argument broadcasts against the node axis: ``node_levels``, ``node_positions`` (integers, the
    node axis last), ``category``, ``partner`` (integer indices with a trailing axis of 1), the costs
    and baselines (a trailing axis of 1), ``right_probability`` :math:`\sigma(\phi)` and
    ``branch_factor`` :math:`\sigma(|\phi|)` (on the node axis)."""
    on_path = (category >> node_levels) == node_positions
    on_partner_path = (partner >> node_levels) == node_positions
    bit = (category >> (node_levels - 1)) & 1
    partner_bit = (partner >> (node_levels - 1)) & 1
    branch = on_path & on_partner_path & (bit != partner_bit)
    antithetic = branch * (cost - partner_cost) * (1 - 2 * partner_bit) * branch_factor
    own = (on_path & ~on_partner_path) * (cost - baseline) * (bit - right_probability)
    partner_own = (on_partner_path & ~on_path) * (partner_cost - partner_baseline) * (partner_bit - right_probability)
    return 0.5 * (antithetic + own + partner_own)
