"""Reparameterizable discrete distributions for Pyro: hard samples, exact ``log_prob``, and
pathwise gradients through the estimator of your choice."""

from pyro_redge import kl
from pyro_redge.distributions import (
    Bernoulli,
    Binomial,
    Geometric,
    NegativeBinomial,
    OneHotCategorical,
    Poisson,
    Relaxed,
)
from pyro_redge.estimators import Estimator, GumbelSoftmax, ReDGE, ReinMax, StraightThrough
from pyro_redge.kl import kl_divergence

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "Binomial",
    "Estimator",
    "Geometric",
    "GumbelSoftmax",
    "NegativeBinomial",
    "OneHotCategorical",
    "Poisson",
    "ReDGE",
    "ReinMax",
    "Relaxed",
    "StraightThrough",
    "kl",
    "kl_divergence",
]
