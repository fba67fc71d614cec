from pyro_redge.infer.autoguide import AutoRelaxed, UnrelaxedModelWarning
from pyro_redge.infer.elbo import JitScoreFunction_ELBO, ScoreFunction_ELBO
from pyro_redge.infer.reparam import RelaxReparam, relax

__all__ = [
    "AutoRelaxed",
    "JitScoreFunction_ELBO",
    "RelaxReparam",
    "ScoreFunction_ELBO",
    "UnrelaxedModelWarning",
    "relax",
]
