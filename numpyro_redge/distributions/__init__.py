from numpyro_redge.distributions.bernoulli import Bernoulli
from numpyro_redge.distributions.counts import Binomial, Geometric, NegativeBinomial, Poisson
from numpyro_redge.distributions.k_subset import KSubset, LawMismatchWarning
from numpyro_redge.distributions.one_hot_categorical import OneHotCategorical
from numpyro_redge.distributions.relaxed_one_hot_categorical import RelaxedOneHotCategorical
from numpyro_redge.distributions.reparameterized_discrete import Relaxed, ReparameterizedDiscrete

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
    "RelaxedOneHotCategorical",
]
