from numpyro_redge.distributions.bernoulli import Bernoulli
from numpyro_redge.distributions.one_hot_categorical import OneHotCategorical
from numpyro_redge.distributions.relaxed_one_hot_categorical import RelaxedOneHotCategorical

__all__ = ["Bernoulli", "OneHotCategorical", "RelaxedOneHotCategorical"]
