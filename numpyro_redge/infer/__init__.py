from numpyro_redge.infer.reparam import RelaxReparam

__all__ = ["RelaxReparam"]
