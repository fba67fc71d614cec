"""Generic conformance of every distribution of ours, in the style of the hosts' own suites
(NumPyro's ``test/test_distributions.py``, Pyro's ``tests/distributions``): sample and
``log_prob`` shapes over batch and sample shapes, ``infer_shapes``, ``expand`` keeping the class,
jit/vmap/pytree round trips (NumPyro), parameter and value validation eager and under jit,
``log_prob`` against SciPy and the moments against SciPy.

One table, :data:`CASES`: each row builds the distribution for a batch shape from NumPy
parameters, and says what SciPy (or enumeration, for k-subsets) gives for it.
"""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

# The count classes drop an upper tail of mass m <= ``tail_mass`` (default 1e-6) and renormalise:
# their log-pmf differs from SciPy's by -log(1 - m) <= 1.01e-6 (bound 2e-6), and their moments by
# at most what dropping that tail can move them (see ``tail_bounds``).
TAIL_MASS = 1e-6
COUNT_ATOL = 2e-6
# A static truncation for the count classes under jit (the tail above it is below 1e-6 at every
# parameter of the table).
TRUNCATION = 24
K = 3  # categories of the one-hot cases
N, SUBSET_K = 4, 2  # items and subset size of the k-subset case


def _parameters(batch_shape, values):
    """Parameters of the batch shape: the values cycled over the batch members."""
    count = int(np.prod(batch_shape, dtype=int))
    return np.asarray([values[i % len(values)] for i in range(count)], dtype=np.float64).reshape(
        tuple(batch_shape) + np.shape(values[0])
    )


def _one_hot_probs(batch_shape):
    return _parameters(batch_shape, [np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])])


def _k_subset_logits(batch_shape):
    return _parameters(batch_shape, [np.array([0.3, -0.2, 1.0, 0.0]), np.array([-1.0, 0.5, 0.2, 0.4])])


class Case:
    """A row of the table.

    :param build: ``(backend, batch_shape, static) -> distribution`` (``static``: a static
        truncation, for jit);
    :param event_shape: the event shape;
    :param arg_shapes: ``batch_shape -> {argument: shape}`` for ``infer_shapes``;
    :param support: ``batch_shape -> values`` of shape ``(S,) + batch_shape + event_shape`` to score;
    :param scipy_log_prob: ``(batch_shape, values) -> exact log-pmf`` (NumPy), or ``None``;
    :param moments: ``batch_shape -> (mean, variance)`` exact, or ``None``;
    :param bad: ``(backend) -> (class, arguments)`` with an invalid constant parameter, and the
        argument the error must name;
    :param outside: a value outside the support (one event), or ``None``;
    :param hosts: the hosts that have the class;
    :param atol: the absolute tolerance of ``log_prob`` (relative: 1e-9);
    :param frozen: ``batch_shape ->`` the frozen SciPy distribution, for a class that truncates its tail;
    :param outside_warns: a value outside the support is a warning eagerly (NumPyro's convention for
        a continuous support, where rounding puts valid values slightly outside), not an error.
    """

    def __init__(self, build, event_shape, arg_shapes, support=None, scipy_log_prob=None, moments=None, bad=None,
                 outside=None, hosts=("pyro", "numpyro"), atol=1e-12, outside_warns=False, frozen=None):  # fmt: skip
        self.build, self.event_shape, self.arg_shapes = build, event_shape, arg_shapes
        self.support, self.scipy_log_prob, self.moments = support, scipy_log_prob, moments
        self.bad, self.outside, self.hosts, self.atol, self.frozen = bad, outside, hosts, atol, frozen
        self.outside_warns = outside_warns


def _count_support(batch_shape, size=12):
    values = np.arange(float(size)).reshape((size,) + (1,) * len(batch_shape))
    return np.broadcast_to(values, (size,) + tuple(batch_shape))


def _count_case(name, host_arguments, scipy_of, bad_arguments, bad_name, arg_names, support_size=12):
    """A count class: ``host_arguments(batch_shape) -> kwargs`` (NumPy), ``scipy_of(kwargs)`` the
    frozen SciPy distribution."""

    def build(backend, batch_shape, static):
        kwargs = {key: backend.array(value) for key, value in host_arguments(batch_shape).items()}
        return getattr(backend.lib, name)(
            **kwargs, estimator=backend.lib.StraightThrough(), truncation=TRUNCATION if static else None
        )

    def scipy_log_prob(batch_shape, values):
        return scipy_of(host_arguments(batch_shape)).logpmf(values)

    def moments(batch_shape):
        frozen = scipy_of(host_arguments(batch_shape))
        return frozen.mean(), frozen.var()

    def bad(backend):
        return getattr(backend.lib, name), {key: backend.array(value) for key, value in bad_arguments.items()}

    def arg_shapes(batch_shape):
        return {argument: tuple(batch_shape) if argument != "total_count" else () for argument in arg_names}

    def support(batch_shape):
        return _count_support(batch_shape, support_size)

    return Case(build, (), arg_shapes, support, scipy_log_prob, moments, (bad, bad_name), 1.5,
                atol=COUNT_ATOL, frozen=lambda b: scipy_of(host_arguments(b)))  # fmt: skip


def _one_hot(parameter):
    def build(backend, batch_shape, static):
        probs = _one_hot_probs(batch_shape)
        value = probs if parameter == "probs" else np.log(probs) + 0.7  # unnormalised logits
        return backend.lib.OneHotCategorical(**{parameter: backend.array(value)}, estimator=backend.lib.ReinMax())

    def support(batch_shape):
        return np.broadcast_to(np.eye(K).reshape((K,) + (1,) * len(batch_shape) + (K,)), (K,) + batch_shape + (K,))

    def scipy_log_prob(batch_shape, values):
        return stats.multinomial(1, _one_hot_probs(batch_shape)).logpmf(values)

    def moments(batch_shape):
        probs = _one_hot_probs(batch_shape)
        return probs, probs * (1 - probs)

    bad = ({"probs": [0.5, 0.6, 0.1]} if parameter == "probs" else {"logits": [0.0, np.nan, 1.0]}), parameter
    return Case(
        build,
        (K,),
        lambda batch_shape: {parameter: tuple(batch_shape) + (K,)},
        support,
        scipy_log_prob,
        moments,
        (lambda backend: (backend.lib.OneHotCategorical, {k: backend.array(v) for k, v in bad[0].items()}), bad[1]),
        [0.5, 0.5, 0.0],
    )


def _bernoulli_probs(batch_shape):
    return _parameters(batch_shape, [0.3, 0.8])


def _bernoulli(parameter):
    def build(backend, batch_shape, static):
        probs = _bernoulli_probs(batch_shape)
        value = probs if parameter == "probs" else np.log(probs) - np.log1p(-probs)
        return backend.lib.Bernoulli(**{parameter: backend.array(value)}, estimator=backend.lib.ReinMax())

    def bad(backend):
        return backend.lib.Bernoulli, {parameter: backend.array(1.5 if parameter == "probs" else np.nan)}

    def moments(batch_shape):
        frozen = stats.bernoulli(_bernoulli_probs(batch_shape))
        return frozen.mean(), frozen.var()

    return Case(
        build,
        (),
        lambda batch_shape: {parameter: tuple(batch_shape)},
        lambda batch_shape: np.broadcast_to(np.arange(2.0).reshape((2,) + (1,) * len(batch_shape)), (2,) + batch_shape),
        lambda batch_shape, values: stats.bernoulli(_bernoulli_probs(batch_shape)).logpmf(values),
        moments,
        (bad, parameter),
        0.5,
    )


def _rates(batch_shape):
    return _parameters(batch_shape, [2.5, 1.0])


def _success(batch_shape):
    return _parameters(batch_shape, [0.3, 0.55])


def _reparameterized_discrete():
    """``ReparameterizedDiscrete`` over the host's Binomial(5, p): a finite support."""

    def build(backend, batch_shape, static):
        base = backend.dist.Binomial(5, probs=backend.array(_success(batch_shape)))
        return backend.lib.ReparameterizedDiscrete(base, backend.lib.StraightThrough())

    def bad(backend):
        base = backend.dist.Binomial(5, probs=backend.array(0.3))
        return backend.lib.ReparameterizedDiscrete, {"base": base, "estimator": "ST"}

    def moments(batch_shape):
        frozen = stats.binom(5, _success(batch_shape))
        return frozen.mean(), frozen.var()

    return Case(
        build,
        (),
        lambda batch_shape: {"base": tuple(batch_shape)},
        lambda batch_shape: _count_support(batch_shape)[:6],
        lambda batch_shape, values: stats.binom(5, _success(batch_shape)).logpmf(values),
        moments,
        (bad, "estimator"),
        6.0,
    )


def _k_subset():
    subsets = [np.isin(np.arange(N), chosen).astype(float) for chosen in itertools.combinations(range(N), SUBSET_K)]

    def build(backend, batch_shape, static):
        return backend.lib.KSubset(backend.array(_k_subset_logits(batch_shape)), SUBSET_K)

    def support(batch_shape):
        values = np.stack(subsets).reshape((len(subsets),) + (1,) * len(batch_shape) + (N,))
        return np.broadcast_to(values, (len(subsets),) + batch_shape + (N,))

    def log_prob(batch_shape, values):  # exact, by enumerating the subsets
        logits = _k_subset_logits(batch_shape)
        normaliser = logsumexp(np.stack([(subset * logits).sum(-1) for subset in subsets]), axis=0)
        return (values * logits).sum(-1) - normaliser

    def moments(batch_shape):
        values = support(batch_shape)
        probs = np.exp(log_prob(batch_shape, values))[..., None]
        mean = (probs * values).sum(0)
        return mean, mean * (1 - mean)

    return Case(
        build,
        (N,),
        lambda batch_shape: {"logits": tuple(batch_shape) + (N,)},
        support,
        log_prob,
        moments,
        (lambda backend: (backend.lib.KSubset, {"logits": backend.array([0.0, 1.0, 2.0]), "k": 4}), "k"),
        [1.0, 1.0, 1.0, 0.0],
    )


def _relaxed_one_hot_categorical():
    def build(backend, batch_shape, static):
        return backend.lib.RelaxedOneHotCategorical(0.5, probs=backend.array(_one_hot_probs(batch_shape)))

    return Case(
        build,
        (K,),
        lambda batch_shape: {"temperature": (), "probs": tuple(batch_shape) + (K,)},
        bad=(
            lambda backend: (
                backend.lib.RelaxedOneHotCategorical,
                {"temperature": -1.0, "probs": backend.array([0.2, 0.5, 0.3])},
            ),
            "temperature",
        ),
        outside=[0.5, 0.6, -0.1],
        hosts=("numpyro",),
        outside_warns=True,
    )


CASES = {
    "one_hot_probs": _one_hot("probs"),
    "one_hot_logits": _one_hot("logits"),
    "bernoulli_probs": _bernoulli("probs"),
    "bernoulli_logits": _bernoulli("logits"),
    "poisson": _count_case(
        "Poisson",
        lambda b: {"rate": _rates(b)},
        lambda kw: stats.poisson(kw["rate"]),
        {"rate": -1.0},
        "rate",
        ["rate"],
    ),  # fmt: skip
    "binomial": _count_case(
        "Binomial",
        lambda b: {"total_count": 8.0, "probs": _success(b)},
        lambda kw: stats.binom(8, kw["probs"]),
        {"total_count": 8.0, "probs": 1.5},
        "probs",
        ["total_count", "probs"],
        support_size=9,
    ),
    "geometric": _count_case(
        "Geometric",
        lambda b: {"probs": _success(b) + 0.1},
        # torch and NumPyro count the failures before the first success (support 0, 1, ...).
        lambda kw: stats.geom(kw["probs"], loc=-1),
        {"probs": 1.5},
        "probs",
        ["probs"],
    ),
    "negative_binomial": _count_case(
        "NegativeBinomial",
        lambda b: {"total_count": 3.0, "probs": _success(b) * 0.5},
        # the hosts' probs is the probability of each counted event, SciPy's p that of a stop.
        lambda kw: stats.nbinom(3.0, 1 - kw["probs"]),
        {"total_count": 3.0, "probs": 1.5},
        "probs",
        ["total_count", "probs"],
    ),
    "reparameterized_discrete": _reparameterized_discrete(),
    "k_subset": _k_subset(),
    "relaxed_one_hot_categorical": _relaxed_one_hot_categorical(),
}
BATCH_SHAPES = [(), (2,), (2, 3)]


def case_for(backend, case_id):
    case = CASES[case_id]
    if backend.name not in case.hosts:
        pytest.skip(f"{case_id} is a {'/'.join(case.hosts)} class only")
    return case


def in_support(distribution, value):
    return np.asarray(distribution.support.check(value))


@pytest.mark.parametrize("case_id", list(CASES))
def test_sample_and_log_prob_shapes(backend, case_id):
    case = case_for(backend, case_id)
    rng = backend.rng(0)
    # One batch shape for the whole file (and scalars in the validation test): NumPyro's count classes
    # compile per shape, several seconds each.
    for batch_shape, sample_shape in [((2, 3), ()), ((2, 3), (4, 1))]:
        d = case.build(backend, batch_shape, False)
        assert tuple(d.batch_shape) == batch_shape and tuple(d.event_shape) == case.event_shape
        value = backend.sample(d, rng.next(), sample_shape)
        assert tuple(value.shape) == sample_shape + batch_shape + case.event_shape
        assert np.all(backend.numpy(in_support(d, value)))
        assert tuple(d.log_prob(value).shape) == sample_shape + batch_shape


@pytest.mark.parametrize("case_id", list(CASES))
def test_infer_shapes(backend, case_id):
    case = case_for(backend, case_id)
    cls = type(case.build(backend, (), False))
    for batch_shape in BATCH_SHAPES:
        inferred = cls.infer_shapes(**case.arg_shapes(batch_shape))
        assert tuple(map(tuple, inferred)) == (batch_shape, case.event_shape)


@pytest.mark.parametrize("case_id", list(CASES))
def test_expand_keeps_the_class(backend, case_id):
    case = case_for(backend, case_id)
    d = case.build(backend, (2, 3), False)
    expanded = d.expand((4, 2, 3))
    assert type(expanded) is type(d) and tuple(expanded.batch_shape) == (4, 2, 3)
    value = backend.sample(expanded, backend.rng(1).next())
    assert tuple(value.shape) == (4, 2, 3) + case.event_shape
    # equal up to the rounding of a wider vectorised reduction
    np.testing.assert_allclose(
        backend.numpy(expanded.log_prob(value))[0], backend.numpy(d.log_prob(value[0])), rtol=1e-12
    )


@pytest.mark.parametrize("case_id", list(CASES))
def test_jit_vmap_and_pytree_round_trips(backend, case_id):
    """NumPyro mechanics: a distribution is a pytree (flattened and rebuilt with the same structure,
    passed through ``jit``), sampled under ``vmap`` over keys and scored under ``vmap`` over values."""
    case = case_for(backend, case_id)
    if not backend.jittable:
        pytest.skip("jit, vmap and pytrees are JAX mechanics")
    import jax

    d = case.build(backend, (2, 3), True)
    leaves, treedef = jax.tree_util.tree_flatten(d)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is type(d) and jax.tree_util.tree_structure(rebuilt) == treedef
    key = backend.rng(2).next()
    value = jax.jit(lambda dist, key: dist.sample(key))(d, key)
    np.testing.assert_array_equal(value, d.sample(key))
    np.testing.assert_allclose(jax.jit(lambda dist, v: dist.log_prob(v))(d, value), d.log_prob(value), rtol=1e-12)
    keys = jax.random.split(key, 4)
    values = jax.vmap(d.sample)(keys)
    assert values.shape == (4, 2, 3) + case.event_shape
    np.testing.assert_allclose(jax.vmap(d.log_prob)(values), d.log_prob(values), rtol=1e-12)


@pytest.mark.parametrize("case_id", list(CASES))
def test_validation_eager_and_under_jit(backend, case_id):
    """An invalid constant parameter is a ``ValueError`` naming it, eagerly and while tracing
    under jit; a value outside the support is an error eagerly and scores ``-inf`` under jit
    (where it cannot be checked eagerly), as NumPyro's own distributions do."""
    case = case_for(backend, case_id)
    bad, name = case.bad
    cls, arguments = bad(backend)  # made outside jit: constants while tracing
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        cls(**arguments)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        backend.jit(lambda: cls(**arguments).mean)()
    d = case.build(backend, (), True)
    outside = backend.array(case.outside)
    with pytest.warns(UserWarning) if case.outside_warns else pytest.raises(ValueError):
        d.log_prob(outside)
    if backend.jittable:
        assert float(backend.jit(d.log_prob)(outside)) == -np.inf


@pytest.mark.parametrize("case_id", [case_id for case_id, case in CASES.items() if case.scipy_log_prob])
def test_log_prob_matches_scipy(backend, case_id):
    case = case_for(backend, case_id)
    for batch_shape in [(2, 3)]:
        d = case.build(backend, batch_shape, False)
        values = np.array(case.support(batch_shape))  # a writable copy, for torch
        expected = case.scipy_log_prob(batch_shape, values)
        np.testing.assert_allclose(
            backend.numpy(d.log_prob(backend.array(values))), expected, rtol=1e-9, atol=case.atol
        )


@pytest.mark.parametrize("case_id", [case_id for case_id, case in CASES.items() if case.moments])
def test_mean_and_variance_match_scipy(backend, case_id):
    case = case_for(backend, case_id)
    for batch_shape in [(2, 3)]:
        d = case.build(backend, batch_shape, False)
        mean, variance = case.moments(batch_shape)
        mean_bound, variance_bound = tail_bounds(case.frozen(batch_shape)) if case.frozen else (0.0, 0.0)
        assert np.all(np.abs(backend.numpy(d.mean) - mean) <= mean_bound + 1e-9 * np.abs(mean))
        assert np.all(np.abs(backend.numpy(d.variance) - variance) <= variance_bound + 1e-9 * np.abs(variance))


def tail_bounds(frozen):
    """How far dropping an upper tail of mass at most ``TAIL_MASS`` (and renormalising) can move the
    mean and the variance: with ``T`` the counts above the one whose upper tail is at most that
    (SciPy's ``isf``), ``m <= TAIL_MASS`` its mass, ``|Δ mean| <= Σ_T |k - μ| p_k / (1 - m)`` and
    ``|Δ var| <= Σ_T (k - μ)² p_k / (1 - m) + Δ mean²``."""
    mean, last = frozen.mean(), frozen.isf(TAIL_MASS)
    counts = np.arange(float(np.max(last)) + 2000).reshape((-1,) + (1,) * np.ndim(mean))
    weights = np.where(counts > last, frozen.pmf(counts), 0.0)
    mean_bound = 1.01 * (np.abs(counts - mean) * weights).sum(0)
    return mean_bound, 1.01 * ((counts - mean) ** 2 * weights).sum(0) + mean_bound**2
