"""The two hosts behind one small interface, so that each behaviour is tested once for both.

A test takes the ``backend`` fixture (see ``tests/conftest.py``), parametrised over ``pyro`` and
``numpyro``, and writes its model with the host's own primitives through ``backend.ppl`` (``pyro``
or ``numpyro``: ``sample``, ``param``, ``plate``, ``factor`` have the same signatures), our classes
through ``backend.lib`` (``pyro_redge`` or ``numpyro_redge``) and the host's distributions through
``backend.dist``. Randomness goes through ``backend.rng(seed)``: a stream of PyTorch seeds or of
JAX keys. Everything returned to the test for an assertion is a NumPy array (``backend.numpy``).

Only what is genuinely host-specific (jit and pytrees, poutine and plates, host validation
quirks) stays in ``tests/pyro`` and ``tests/numpyro``.
"""

import contextlib
import importlib

import numpy as np

from tests import host_sync


class _TorchKeys:
    """A stream of seeds for PyTorch's global generator: ``next()`` reseeds and returns ``None``."""

    def __init__(self, seed):
        import torch

        self._generator = np.random.default_rng(seed)
        self._torch = torch

    def next(self):
        self._torch.manual_seed(int(self._generator.integers(2**31)))


class _JaxKeys:
    """A stream of JAX PRNG keys: ``next()`` returns a fresh key."""

    def __init__(self, seed):
        import jax

        self._key = jax.random.PRNGKey(seed)
        self._jax = jax

    def next(self):
        self._key, key = self._jax.random.split(self._key)
        return key


class Backend:
    """Common interface; see :class:`PyroBackend` and :class:`NumPyroBackend`."""

    name = None

    def __repr__(self):
        return self.name

    @property
    def lib(self):
        return importlib.import_module(self.package)


class PyroBackend(Backend):
    name = "pyro"
    package = "pyro_redge"
    jittable = False

    def __init__(self, device="cpu"):
        import pyro
        import pyro.distributions
        import torch

        self.torch, self.ppl, self.dist, self.device = torch, pyro, pyro.distributions, device

    # arrays ---------------------------------------------------------------------------------
    def array(self, value, dtype="float64"):
        """A host array of ``value`` (``dtype`` a NumPy dtype name, or ``None`` to keep)."""
        torch = self.torch
        if isinstance(value, torch.Tensor):
            tensor = value.to(self.device)
        else:
            tensor = torch.as_tensor(np.asarray(value), device=self.device)
        return tensor if dtype is None else tensor.to(getattr(torch, str(dtype)))

    def numpy(self, value):
        torch = self.torch
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype in (torch.bfloat16,):
                value = value.float()
            return value.numpy()
        return np.asarray(value)

    def dtype_name(self, value):
        return str(value.dtype).replace("torch.", "")

    # randomness -----------------------------------------------------------------------------
    def rng(self, seed=0):
        return _TorchKeys(seed)

    def call(self, estimator, logits, key, **kwargs):
        """The estimator's functional form (PyTorch: the global generator, seeded by ``key``)."""
        return estimator(logits, **kwargs)

    def sample_noise(self, estimator, logits, key, **kwargs):
        return estimator.sample_noise(logits, **kwargs)

    def sample(self, distribution, key, sample_shape=()):
        return distribution.sample(self.torch.Size(sample_shape))

    def rsample(self, distribution, key, sample_shape=()):
        return distribution.rsample(self.torch.Size(sample_shape))

    # derivatives ----------------------------------------------------------------------------
    def grad(self, function, *arguments):
        """Gradients of the scalar ``function(*arguments)`` w.r.t. every argument, as NumPy."""
        torch = self.torch
        leaves = [self.array(argument, None).detach().clone().requires_grad_(True) for argument in arguments]
        output = function(*leaves)
        grads = torch.autograd.grad(output, leaves, allow_unused=True)
        return [np.zeros(leaf.shape) if g is None else self.numpy(g) for leaf, g in zip(leaves, grads, strict=True)]

    def value_and_grad(self, function, argument):
        torch = self.torch
        leaf = self.array(argument, None).detach().clone().requires_grad_(True)
        output = function(leaf)
        (grad,) = torch.autograd.grad(output, [leaf])
        return self.numpy(output), self.numpy(grad)

    def unsynchronised_value_and_grad(self, function, argument, key):
        """``function(argument, key)`` and its gradient, run with validation off (the hosts' argument
        checks read values on the host by design) under a guard that fails on any host
        synchronisation (:mod:`tests.host_sync`)."""
        torch = self.torch
        leaf = self.array(argument, None).detach().clone().requires_grad_(True)
        with self.validation(False), host_sync.no_host_synchronisation("pyro"):
            output = function(leaf, key)
            (grad,) = torch.autograd.grad(output, [leaf])
        return self.numpy(output), self.numpy(grad)

    # inference ------------------------------------------------------------------------------
    def fit(
        self,
        model,
        guide,
        steps,
        learning_rate,
        final_learning_rate=None,
        elbo="Trace_ELBO",
        num_particles=1,
        seed=0,
        args=(),
        until=None,
        check_every=10,
    ):
        """Run SVI with Adam (learning rate decayed geometrically to ``final_learning_rate``) and
        return the parameter store as NumPy arrays (constrained values), and the loss history.
        ``elbo`` names the host's ELBO class (``Trace_ELBO``, ``TraceMeanField_ELBO``,
        ``TraceGraph_ELBO``). With ``until(params)``, checked every ``check_every`` steps, the fit
        stops as soon as it is true: ``len(losses)`` is then the number of steps taken."""
        pyro, torch = self.ppl, self.torch
        from pyro import infer

        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        decay = 1.0 if final_learning_rate is None else (final_learning_rate / learning_rate) ** (1 / steps)
        optimizer = pyro.optim.ClippedAdam({"lr": learning_rate, "lrd": decay})
        elbo_instance = self.elbo(elbo, num_particles)
        svi = infer.SVI(model, guide, optimizer, elbo_instance)
        store = pyro.get_param_store()

        def current():
            return {name: self.numpy(store[name]) for name in store.keys()}

        losses = []
        for step in range(1, steps + 1):
            losses.append(svi.step(*args))
            if until is not None and step % check_every == 0 and until(current()):
                break
        torch.set_grad_enabled(True)
        return current(), np.asarray(losses)

    def elbo(self, name, num_particles=1):
        """The ELBO class ``name`` of ours (``ScoreFunction_ELBO``, ``JitScoreFunction_ELBO``) or of
        Pyro's ``infer``, with ``num_particles`` vectorized particles and two plates at most."""
        from pyro import infer

        cls = getattr(self.lib.infer, name, None) or getattr(infer, name)
        return cls(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=2)

    def scale(self, factor):
        """The host's scale handler (``poutine.scale``): log-densities inside count ``factor`` times."""
        from pyro import poutine

        return poutine.scale(scale=factor)

    def mask(self, mask):
        """The host's mask handler (``poutine.mask``): log-densities inside count where ``mask`` is true."""
        from pyro import poutine

        return poutine.mask(mask=self.torch.as_tensor(mask, device=self.device))

    def elbo_gradient(self, elbo, model, guide, args=(), seed=0):
        """The gradient of the ELBO (not the loss) that ``elbo`` estimates at the guide's initial
        parameters, ``{name: NumPy array}``, from one call with seed ``seed``."""
        self.ppl.clear_param_store()
        self.ppl.set_rng_seed(seed)
        elbo.loss_and_grads(model, guide, *args)
        store = self.ppl.get_param_store()
        return {name: -self.numpy(store[name].unconstrained().grad) for name in store.keys()}

    def clear_params(self):
        self.ppl.clear_param_store()

    @contextlib.contextmanager
    def validation(self, enabled=True):
        with self.ppl.validation_enabled(enabled):
            yield

    @contextlib.contextmanager
    def x64(self):
        yield

    # estimators and k-subsets ---------------------------------------------------------------
    def softmax(self, x):
        """The host's softmax over the last axis."""
        return self.torch.softmax(x, -1)

    def jit(self, function):
        """``function`` compiled where the host compiles (JAX); PyTorch runs it as is."""
        return function

    def gradient(self, function, has_aux=False):
        """The host function ``(x, *rest) -> ∂ function(x, *rest) / ∂x`` (host arrays in and out),
        for :meth:`jit`; ``function`` returns a scalar, or ``(scalar, aux)`` with ``has_aux``, and
        then the gradient function returns ``(gradient, aux)``."""
        torch = self.torch

        def gradient(x, *rest):
            leaf = x.detach().clone().requires_grad_(True)
            value, aux = function(leaf, *rest) if has_aux else (function(leaf, *rest), None)
            (grad,) = torch.autograd.grad(value, [leaf])
            return (grad, aux.detach()) if has_aux else grad

        return gradient

    def adam(self, loss, init, steps, learning_rate, seed=0):
        """Minimise ``loss(parameter, key)`` by ``steps`` Adam steps from ``init``, a fresh key (a
        reseeded global generator in PyTorch) at each step; the final parameter as NumPy."""
        torch = self.torch
        keys = self.rng(seed)
        parameter = self.array(init, None).detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([parameter], lr=learning_rate)
        for _ in range(steps):
            optimizer.zero_grad()
            loss(parameter, keys.next()).backward()
            optimizer.step()
        return self.numpy(parameter)

    # handlers and autoguides (tests/test_reparam.py, tests/test_autoguide.py) -------------------
    def reparam(self, model, config):
        """``model`` under the host's reparam handler (``poutine.reparam``)."""
        from pyro import poutine

        return poutine.reparam(model, config=config)

    def trace(self, model, *args, seed=0):
        """Run ``model(*args)`` once and return its sample sites, ``{name: site}`` (each with
        ``"fn"``, ``"value"``, ``"is_observed"``)."""
        from pyro import poutine

        self.ppl.set_rng_seed(seed)
        nodes = poutine.trace(model).get_trace(*args).nodes
        return {name: site for name, site in nodes.items() if site["type"] == "sample"}

    def relaxed_parameter_name(self, site):
        """The name under which :class:`AutoRelaxed` stores the learnable parameter of ``site``."""
        return f"AutoRelaxed.discrete.{site}"

    def guide_median(self, guide, params, *args):
        """``guide.median`` after :meth:`fit` (Pyro reads the parameter store), as NumPy arrays."""
        return {name: self.numpy(value) for name, value in guide.median(*args).items()}

    def guide_quantiles(self, guide, params, quantiles, *args):
        return {name: self.numpy(value) for name, value in guide.quantiles(quantiles, *args).items()}

    def predictive(self, model, guide, params, num_samples, return_sites, *args):
        """Draws of ``return_sites`` from ``model`` given draws of ``guide`` after :meth:`fit`."""
        from pyro.infer import Predictive

        self.ppl.set_rng_seed(0)
        draws = Predictive(model, guide=guide, num_samples=num_samples, return_sites=return_sites)(*args)
        return {name: self.numpy(value) for name, value in draws.items()}


class NumPyroBackend(Backend):
    name = "numpyro"
    package = "numpyro_redge"
    jittable = True

    def __init__(self, device="cpu"):
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions

        self.jax, self.jnp, self.ppl, self.dist, self.device = jax, jnp, numpyro, numpyro.distributions, device

    def array(self, value, dtype="float64"):
        return self.jnp.asarray(value) if dtype is None else self.jnp.asarray(value, dtype=dtype)

    def numpy(self, value):
        value = np.asarray(value)
        if value.dtype.name == "bfloat16":
            value = value.astype(np.float32)
        return value

    def dtype_name(self, value):
        return str(value.dtype)

    def rng(self, seed=0):
        return _JaxKeys(seed)

    def call(self, estimator, logits, key, **kwargs):
        return estimator(key, logits, **kwargs)

    def sample_noise(self, estimator, logits, key, **kwargs):
        return estimator.sample_noise(key, logits, **kwargs)

    def sample(self, distribution, key, sample_shape=()):
        return distribution.sample(key, tuple(sample_shape))

    def rsample(self, distribution, key, sample_shape=()):
        return distribution.rsample(key, tuple(sample_shape))

    def grad(self, function, *arguments):
        """The gradient compiled as one program (as SVI runs it; eagerly JAX compiles each operation
        for each new shape), or eagerly where tracing cannot run it: a count distribution chooses
        its window from concrete parameters, and our host checks read concrete values."""
        gradient = self.jax.grad(function, argnums=tuple(range(len(arguments))))
        return [self.numpy(g) for g in self._compiled_or_eager(gradient, *arguments)]

    def _compiled_or_eager(self, function, *arguments):
        arrays = [self.array(argument, None) for argument in arguments]
        try:
            return self.jax.jit(function)(*arrays)
        except (self.jax.errors.ConcretizationTypeError, self.jax.errors.TracerArrayConversionError, ValueError):
            return function(*arrays)

    def value_and_grad(self, function, argument):
        """Compiled where tracing can run it, as :meth:`grad`."""
        return tuple(
            self.numpy(result) for result in self._compiled_or_eager(self.jax.value_and_grad(function), argument)
        )

    def unsynchronised_value_and_grad(self, function, argument, key):
        """The program NumPyro would compile for ``function(argument, key)`` and its gradient
        (``jit(value_and_grad)``), traced and lowered with validation off (our checks of constant
        parameters run on the host while tracing, by design) under ``jax.transfer_guard("disallow")``:
        a value read on the host would fail the trace. Not compiled (one large program takes ~45 s
        of CPU to compile; its values are the other tests' business): returns ``None``."""
        jax = self.jax
        argument = jax.device_put(self.array(argument, None))
        with self.validation(False), host_sync.no_host_synchronisation("numpyro"):
            jax.jit(jax.value_and_grad(function)).trace(argument, key).lower()

    def fit(
        self,
        model,
        guide,
        steps,
        learning_rate,
        final_learning_rate=None,
        elbo="Trace_ELBO",
        num_particles=1,
        seed=0,
        args=(),
        until=None,
        check_every=10,
    ):
        import optax
        from numpyro import infer

        if final_learning_rate is None:
            schedule = learning_rate
        else:
            schedule = optax.exponential_decay(learning_rate, steps, final_learning_rate / learning_rate)
        svi = infer.SVI(model, guide, optax.adam(schedule), self.elbo(elbo, num_particles))

        def constrained(state):
            return {name: np.asarray(value) for name, value in svi.get_params(state).items()}

        if until is None:
            result = svi.run(self.jax.random.PRNGKey(seed), steps, *args, progress_bar=False)
            return constrained(result.state), np.asarray(result.losses)
        state = svi.init(self.jax.random.PRNGKey(seed), *args)
        update = self.jax.jit(svi.update)
        losses = []
        for step in range(1, steps + 1):
            state, loss = update(state, *args)
            losses.append(loss)
            if step % check_every == 0 and until(constrained(state)):
                break
        return constrained(state), np.asarray(losses)

    def elbo(self, name, num_particles=1):
        """The ELBO class ``name`` of ours (``ScoreFunction_ELBO``) or of NumPyro's ``infer``."""
        from numpyro import infer

        cls = getattr(self.lib.infer, name, None) or getattr(infer, name)
        return cls(num_particles=num_particles)

    def scale(self, factor):
        from numpyro import handlers

        return handlers.scale(scale=factor)

    def mask(self, mask):
        from numpyro import handlers

        return handlers.mask(mask=self.jnp.asarray(mask))

    def elbo_gradient(self, elbo, model, guide, args=(), seed=0):
        """The gradient of the ELBO (not the loss) that ``elbo`` estimates at the guide's initial
        parameters (unconstrained ones only), ``{name: NumPy array}``, compiled, with key ``seed``."""
        from numpyro import handlers

        jax = self.jax
        guide_trace = handlers.trace(handlers.seed(guide, 0)).get_trace(*args)
        params = {name: site["value"] for name, site in guide_trace.items() if site["type"] == "param"}
        gradient = jax.jit(jax.grad(lambda p, key: -elbo.loss(key, p, model, guide, *args)))
        return {name: np.asarray(value) for name, value in gradient(params, jax.random.PRNGKey(seed)).items()}

    def clear_params(self):
        pass

    @contextlib.contextmanager
    def validation(self, enabled=True):
        with self.ppl.validation_enabled(enabled):
            yield

    @contextlib.contextmanager
    def x64(self):
        with self.jax.enable_x64(True):
            yield

    def softmax(self, x):
        return self.jax.nn.softmax(x, -1)

    def jit(self, function):
        return self.jax.jit(function)

    def gradient(self, function, has_aux=False):
        return self.jax.grad(function, has_aux=has_aux)

    def adam(self, loss, init, steps, learning_rate, seed=0):
        import optax

        jax = self.jax
        optimizer = optax.adam(learning_rate)

        @jax.jit
        def step(parameter, state, key):
            updates, state = optimizer.update(jax.grad(loss)(parameter, key), state)
            return optax.apply_updates(parameter, updates), state

        parameter = self.array(init, None)
        state = optimizer.init(parameter)
        for key in jax.random.split(jax.random.PRNGKey(seed), steps):
            parameter, state = step(parameter, state, key)
        return self.numpy(parameter)

    # handlers and autoguides (tests/test_reparam.py, tests/test_autoguide.py) -------------------
    def reparam(self, model, config):
        from numpyro import handlers

        return handlers.reparam(model, config=config)

    def trace(self, model, *args, seed=0):
        from numpyro import handlers

        trace = handlers.trace(handlers.seed(model, seed)).get_trace(*args)
        return {name: site for name, site in trace.items() if site["type"] == "sample"}

    def relaxed_parameter_name(self, site):
        return f"auto_{site}_relaxed"

    def guide_median(self, guide, params, *args):
        return {name: self.numpy(value) for name, value in guide.median(params).items()}

    def guide_quantiles(self, guide, params, quantiles, *args):
        return {name: self.numpy(value) for name, value in guide.quantiles(params, quantiles).items()}

    def predictive(self, model, guide, params, num_samples, return_sites, *args):
        from numpyro.infer import Predictive

        draws = Predictive(model, guide=guide, params=params, num_samples=num_samples, return_sites=return_sites)(
            self.jax.random.PRNGKey(1), *args
        )
        return {name: self.numpy(value) for name, value in draws.items()}


BACKENDS = {"pyro": PyroBackend, "numpyro": NumPyroBackend}
