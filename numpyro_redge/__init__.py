"""Reparameterizable discrete distributions for NumPyro: hard samples, exact ``log_prob``, and
pathwise gradients through the estimator of your choice (``jit``/``vmap``/``grad`` safe)."""

from numpyro_redge import kl
from numpyro_redge.distributions import (
    Bernoulli,
    Binomial,
    Geometric,
    KSubset,
    LawMismatchWarning,
    NegativeBinomial,
    OneHotCategorical,
    Poisson,
    Relaxed,
    RelaxedOneHotCategorical,
    ReparameterizedDiscrete,
)
from numpyro_redge.estimators import (
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
from numpyro_redge.infer import (
    AutoRelaxed,
    JitScoreFunction_ELBO,
    RelaxReparam,
    ScoreFunction_ELBO,
    UnrelaxedModelWarning,
    relax,
)
from numpyro_redge.kl import kl_divergence
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
    "RelaxedOneHotCategorical",
    "ScoreFunction_ELBO",
    "StraightThrough",
    "kl",
    "kl_divergence",
    "relax",
]
