from numpyro_redge.infer.autoguide import AutoRelaxed, UnrelaxedModelWarning
from numpyro_redge.infer.elbo import ScoreFunction_ELBO
from numpyro_redge.infer.reparam import RelaxReparam, relax

__all__ = ["AutoRelaxed", "RelaxReparam", "ScoreFunction_ELBO", "UnrelaxedModelWarning", "relax"]
