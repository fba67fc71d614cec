from pyro_redge.estimators.aimle import AIMLE, AIMLEState
from pyro_redge.estimators.base import Estimator
from pyro_redge.estimators.gumbel_rao import GumbelRao
from pyro_redge.estimators.gumbel_softmax import GumbelSoftmax
from pyro_redge.estimators.imle import IMLE
from pyro_redge.estimators.marginal_straight_through import MarginalStraightThrough
from pyro_redge.estimators.redge import ReDGE
from pyro_redge.estimators.reinmax import ReinMax
from pyro_redge.estimators.straight_through import StraightThrough

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
