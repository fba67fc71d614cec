from pyro_redge.estimators.base import Estimator
from pyro_redge.estimators.gumbel_softmax import GumbelSoftmax
from pyro_redge.estimators.redge import ReDGE
from pyro_redge.estimators.reinmax import ReinMax
from pyro_redge.estimators.straight_through import StraightThrough

__all__ = ["Estimator", "GumbelSoftmax", "ReDGE", "ReinMax", "StraightThrough"]
