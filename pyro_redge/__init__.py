"""Reparameterizable discrete distributions for Pyro: hard samples, exact ``log_prob``, and
pathwise gradients through the estimator of your choice."""

from pyro_redge import kl
from pyro_redge.distributions import (
    Bernoulli,
    Binomial,
    Geometric,
    KSubset,
    LawMismatchWarning,
    NegativeBinomial,
    OneHotCategorical,
    Poisson,
    Relaxed,
    ReparameterizedDiscrete,
)
from pyro_redge.estimators import (
    AIMLE,
    IMLE,
    RLOO,
    AIMLEState,
    DisARM,
    Estimator,
    ExactReDGE,
    GumbelRao,
    GumbelSoftmax,
    MarginalStraightThrough,
    ReDGE,
    ReinMax,
    StraightThrough,
)
from pyro_redge.infer import (
    AutoRelaxed,
    JitScoreFunction_ELBO,
    RelaxReparam,
    ScoreFunction_ELBO,
    UnrelaxedModelWarning,
    relax,
)
from pyro_redge.kl import kl_divergence
from redge_core import __version__

__all__ = [
    "__version__",
    "AIMLE",
    "AIMLEState",
    "AutoRelaxed",
    "UnrelaxedModelWarning",
    "Bernoulli",
    "Binomial",
    "DisARM",
    "Estimator",
    "ExactReDGE",
    "Geometric",
    "GumbelRao",
    "GumbelSoftmax",
    "IMLE",
    "JitScoreFunction_ELBO",
    "KSubset",
    "LawMismatchWarning",
    "MarginalStraightThrough",
    "NegativeBinomial",
    "OneHotCategorical",
    "Poisson",
    "RLOO",
    "ReDGE",
    "ReinMax",
    "RelaxReparam",
    "Relaxed",
    "ReparameterizedDiscrete",
    "ScoreFunction_ELBO",
    "StraightThrough",
    "kl",
    "kl_divergence",
    "relax",
]
