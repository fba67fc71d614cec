"""RelaxReparam and relax in both hosts, and the registry they read: host sites become ours with
the same parameters, wrappers kept; errors name the site; every registered class implements the
protocol of CONTRIBUTING.md."""

import inspect

import numpy as np
import pytest

from tests import cases


def host_distribution(backend, case):
    host_name, arguments, _, _ = cases.RELAX_CASES[case]
    if not hasattr(backend.dist, host_name):
        pytest.skip(f"{backend.name} has no {host_name}")
    return getattr(backend.dist, host_name)(**{name: backend.array(value) for name, value in arguments.items()})


@pytest.mark.parametrize("case", list(cases.RELAX_CASES))
def test_host_sites_become_ours_inside_plates_with_wrappers(backend, case):
    _, _, ours_name, parameter = cases.RELAX_CASES[case]
    base = host_distribution(backend, case)
    ours = getattr(backend.lib, ours_name)
    mask = backend.array([True, False, True], "bool")
    ppl = backend.ppl

    def model():
        with ppl.plate("items", 3):
            ppl.sample("plain", base)
            ppl.sample("masked", base.mask(mask))
        with ppl.plate("pairs", 2):
            ppl.sample("wrapped", base.expand([2, 3]).to_event(1))

    # NumPyro with a static truncation (as under jit), Pyro with the one found from tail_mass: both
    # paths of the count classes.
    reparam = backend.lib.RelaxReparam(backend.lib.ReinMax(), truncation=30 if backend.jittable else None)
    sites = backend.trace(backend.reparam(model, {"plain": reparam, "wrapped": reparam, "masked": reparam}))
    plain = sites["plain"]["fn"]
    assert type(plain) is ours and plain.estimator == backend.lib.ReinMax()
    np.testing.assert_allclose(backend.numpy(getattr(plain, parameter)), backend.numpy(getattr(base, parameter)))
    assert sites["wrapped"]["fn"].event_shape == (3,) + tuple(base.event_shape)
    assert sites["wrapped"]["fn"].batch_shape == (2,)
    assert isinstance(sites["masked"]["fn"], backend.dist.MaskedDistribution)
    assert type(sites["masked"]["fn"].base_dist) is ours
    for name in ("plain", "masked", "wrapped"):  # validation accepts the values the relaxed sites drew
        assert np.all(np.isfinite(backend.numpy(sites[name]["fn"].log_prob(sites[name]["value"]))))


def test_observed_sites_are_left_alone(backend):
    def model():
        backend.ppl.sample("x", backend.dist.Poisson(backend.array(2.0)), obs=backend.array(3.0))

    sites = backend.trace(backend.reparam(model, {"x": backend.lib.RelaxReparam()}))
    assert type(sites["x"]["fn"]) is backend.dist.Poisson and float(sites["x"]["value"]) == 3.0


def test_relax_replaces_only_latent_host_discrete_sites(backend):
    ours = backend.lib.Bernoulli(probs=backend.array(0.3), estimator=backend.lib.StraightThrough())

    def model():
        backend.ppl.sample("host", backend.dist.Bernoulli(probs=backend.array(0.3)))
        backend.ppl.sample("ours", ours)
        backend.ppl.sample("continuous", backend.dist.Normal(backend.array(0.0), 1.0))
        backend.ppl.sample("observed", backend.dist.Bernoulli(probs=backend.array(0.3)), obs=backend.array(1.0))

    sites = backend.trace(backend.lib.relax(model, backend.lib.ReinMax()))
    assert type(sites["host"]["fn"]) is backend.lib.Bernoulli and sites["host"]["fn"].estimator == backend.lib.ReinMax()
    assert sites["ours"]["fn"] is ours
    assert type(sites["continuous"]["fn"]) is type(backend.dist.Normal(0.0, 1.0))
    assert type(sites["observed"]["fn"]) is type(backend.dist.Bernoulli(probs=backend.array(0.3)))


@pytest.mark.parametrize("kind", ["categorical", "unsupported", "bad_estimator"])
def test_errors_name_the_site(backend, kind):
    lib = backend.lib
    make_fn, reparam, message = {
        "categorical": (
            lambda: backend.dist.Categorical(logits=backend.array(np.zeros(3))),
            lib.RelaxReparam(),
            "site 'z'.*integer index.*OneHotCategorical",
        ),
        "unsupported": (
            lambda: backend.dist.Normal(backend.array(0.0), 1.0),
            lib.RelaxReparam(),
            "site 'z'.*Normal is not supported; supported: " + lib.distributions.registry.REGISTRY.supported_hosts(),
        ),
        "bad_estimator": (
            lambda: backend.dist.Bernoulli(probs=backend.array(0.3)),
            lib.RelaxReparam(lib.IMLE(samples=2)),
            "site 'z'.*estimator",
        ),
    }[kind]

    def model():
        backend.ppl.sample("z", make_fn())

    with pytest.raises(ValueError, match=message):
        backend.trace(backend.reparam(model, {"z": reparam}))


def test_every_registered_class_implements_the_protocol(backend):
    """Each registered class has the protocol's methods (``mode`` a property, as both hosts'
    ``Distribution.mode`` is), and every host class it replaces has a row in
    ``cases.RELAX_CASES`` (so the test above covers it)."""
    registry = backend.lib.distributions.registry.REGISTRY
    assert registry.registrations, "no distribution registered"
    for cls in registry.registrations:
        assert isinstance(inspect.getattr_static(cls, "from_host"), classmethod), cls
        assert isinstance(inspect.getattr_static(cls, "kl_divergence"), staticmethod), cls
        assert callable(cls.guide_parameter) and callable(cls.guide), cls
        assert isinstance(inspect.getattr_static(cls, "mode"), property), cls
    covered = []
    for case in cases.RELAX_CASES:
        host_name = cases.RELAX_CASES[case][0]
        if hasattr(backend.dist, host_name):
            covered.append(host_distribution(backend, case))
    for host in registry.host_to_ours:
        assert any(isinstance(instance, host) for instance in covered), (
            f"no case in RELAX_CASES builds a {host.__name__}"
        )
