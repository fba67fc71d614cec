from numpyro_redge.estimators.aimle import AIMLE, AIMLEState
from numpyro_redge.estimators.base import Estimator
from numpyro_redge.estimators.gumbel_rao import GumbelRao
from numpyro_redge.estimators.gumbel_softmax import GumbelSoftmax
from numpyro_redge.estimators.imle import IMLE
from numpyro_redge.estimators.marginal_straight_through import MarginalStraightThrough
from numpyro_redge.estimators.redge import ReDGE
from numpyro_redge.estimators.reinmax import ReinMax
from numpyro_redge.estimators.straight_through import StraightThrough

__all__ = [
    "AIMLE",
    "AIMLEState",
    "Estimator",
    "GumbelRao",
    "GumbelSoftmax",
    "IMLE",
    "MarginalStraightThrough",
    "ReDGE",
    "ReinMax",
    "StraightThrough",
]
