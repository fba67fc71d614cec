from pyro_redge.infer.autoguide import AutoRelaxed
from pyro_redge.infer.reparam import RelaxReparam, relax

__all__ = ["AutoRelaxed", "RelaxReparam", "relax"]
