"""The backend-neutral core of pyro-redge (NumPy and SciPy only): argument checks, schedules,
support-window search, the bundled corpus and topic-model metrics, reporting and plots, and the
``redge`` command line. Neither :mod:`pyro_redge` nor :mod:`numpyro_redge` is imported here."""

#: The version of the three packages (released together); ``pyproject.toml`` reads it from here.
__version__ = "0.2.0.dev0"
