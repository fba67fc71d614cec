from pyro_redge.estimators.aimle import AIMLE, AIMLEState
from pyro_redge.estimators.base import Estimator
from pyro_redge.estimators.gumbel_rao import GumbelRao
from pyro_redge.estimators.gumbel_softmax import GumbelSoftmax
from pyro_redge.estimators.imle import IMLE
from pyro_redge.estimators.marginal_straight_through import MarginalStraightThrough
from pyro_redge.estimators.redge import ExactReDGE, ReDGE
from pyro_redge.estimators.reinmax import ReinMax
from pyro_redge.estimators.score_function import RLOO, DisARM
from pyro_redge.estimators.straight_through import StraightThrough
from redge_core.estimator_options import DEFAULT_ESTIMATOR as _DEFAULT_ESTIMATOR_SPEC

__all__ = [
    "AIMLE",
    "AIMLEState",
    "DEFAULT_ESTIMATOR",
    "DisARM",
    "Estimator",
    "ExactReDGE",
    "GumbelRao",
    "GumbelSoftmax",
    "IMLE",
    "MarginalStraightThrough",
    "RLOO",
    "ReDGE",
    "ReinMax",
    "StraightThrough",
]


#: The estimator used when none is given (``KSubset`` excepted), built from
#: :data:`redge_core.estimator_options.DEFAULT_ESTIMATOR`: ``ReinMax()``, the same in both hosts.
DEFAULT_ESTIMATOR = {cls.__name__: cls for cls in (GumbelRao, GumbelSoftmax, ReDGE, ReinMax, StraightThrough)}[
    _DEFAULT_ESTIMATOR_SPEC[0]
](**_DEFAULT_ESTIMATOR_SPEC[1])
