from numpyro_redge.estimators.base import Estimator
from numpyro_redge.estimators.gumbel_softmax import GumbelSoftmax
from numpyro_redge.estimators.redge import ReDGE
from numpyro_redge.estimators.reinmax import ReinMax
from numpyro_redge.estimators.straight_through import StraightThrough

__all__ = ["Estimator", "GumbelSoftmax", "ReDGE", "ReinMax", "StraightThrough"]
