from pyro_redge.distributions.bernoulli import Bernoulli
from pyro_redge.distributions.one_hot_categorical import OneHotCategorical

__all__ = ["Bernoulli", "OneHotCategorical"]
