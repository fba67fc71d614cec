from pyro_redge.distributions.bernoulli import Bernoulli
from pyro_redge.distributions.counts import Binomial, Geometric, NegativeBinomial, Poisson
from pyro_redge.distributions.k_subset import KSubset, LawMismatchWarning
from pyro_redge.distributions.one_hot_categorical import OneHotCategorical
from pyro_redge.distributions.reparameterized_discrete import Relaxed, ReparameterizedDiscrete

__all__ = [
    "Bernoulli",
    "Binomial",
    "Geometric",
    "KSubset",
    "LawMismatchWarning",
    "NegativeBinomial",
    "OneHotCategorical",
    "Poisson",
    "Relaxed",
    "ReparameterizedDiscrete",
]
