r"""The k-subset log-normaliser's plan, shared by both hosts (NumPy-free arithmetic on shapes).

Both hosts compute :math:`\log e_k(e^{\theta})`, the log-partition function of the k-subset family
:math:`p(z) \propto \exp\langle z, \theta\rangle`, through the exact identity

.. math:: \log e_k(e^{\theta}) = k a + \sum_i \log(1 + e^{\theta_i - a}) + \log P(S = k),
    \qquad S = \sum_i B_i,\ B_i \sim \mathrm{Bernoulli}(\sigma(\theta_i - a)),

which holds for every tilt :math:`a`. The tilt is found by :data:`TILT_BISECTION_STEPS` bisection
steps without gradient (a fixed count: no host synchronisation) so that :math:`\mathbb{E}[S] = k`;
then :math:`P(S = k) \ge 1/(n + 1)` (the mode of a Poisson-binomial law is within one of its mean)
and it is computed as the coefficient of :math:`x^k` in :math:`\prod_i (1 - \pi_i + \pi_i x)`,
multiplying pairs of polynomials, truncated at degree ``k``, in a tree (:func:`product_tree_levels`):
sums of non-negative terms only, O(n·k) work in O(log n) vectorised steps, and a backward pass of
the same kind (the derivative of a polynomial product is again one). Stable for logits of any
magnitude: the :math:`k a` term is cancelled against the :math:`a` of the items above the tilt, so
no two large terms cancel. Masked (``-inf``) logits have probability 0 and exactly zero derivatives;
the value is ``-inf`` where fewer than ``k`` items are unmasked.

**References:** Chen, Dempster and Liu, *Weighted finite population sampling to maximize entropy*,
Biometrika 1994 (conditional Poisson sampling, the tilted Bernoulli representation); Darroch,
*On the distribution of the number of successes in independent trials*, 1964 (the mode).
"""

import math

#: Bisection steps of the tilt: the bracket (:func:`tilt_margin` past the extreme logits) shrinks by
#: 2^60, below any floating-point spacing of the logits.
TILT_BISECTION_STEPS = 60


def tilt_margin(num_items):
    """How far past the extreme logits the tilt's bisection bracket reaches: ``log(n + 1) + 10``,
    where the expected subset size is within :math:`e^{-10}` of 0 or of the number of unmasked
    items."""
    return math.log(num_items + 1) + 10.0


def product_tree_levels(num_items, k):
    """The levels of the pairwise product of ``num_items`` degree-1 polynomials truncated at degree
    ``k``: per level, whether an odd polynomial count is padded with the constant polynomial 1, and
    the number of coefficients each product keeps (``min(2 × degree, k) + 1``)."""
    count, degree = num_items, 1
    while count > 1:
        padded = count % 2 == 1
        count, degree = (count + padded) // 2, min(2 * degree, k)
        yield padded, degree + 1
