from numpyro_redge.infer.autoguide import AutoRelaxed
from numpyro_redge.infer.reparam import RelaxReparam, relax

__all__ = ["AutoRelaxed", "RelaxReparam", "relax"]
