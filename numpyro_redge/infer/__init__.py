from numpyro_redge.infer.autoguide import AutoRelaxed, UnrelaxedModelWarning
from numpyro_redge.infer.elbo import JitScoreFunction_ELBO, ScoreFunction_ELBO
from numpyro_redge.infer.reparam import RelaxReparam, relax

__all__ = [
    "AutoRelaxed",
    "JitScoreFunction_ELBO",
    "RelaxReparam",
    "ScoreFunction_ELBO",
    "UnrelaxedModelWarning",
    "relax",
]
