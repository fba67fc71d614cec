from numpyro_redge.infer.autoguide import AutoRelaxed, UnrelaxedModelWarning
from numpyro_redge.infer.reparam import RelaxReparam, relax

__all__ = ["AutoRelaxed", "RelaxReparam", "UnrelaxedModelWarning", "relax"]
