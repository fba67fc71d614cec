"""The backend-neutral core of pyro-redge (NumPy and SciPy only): argument checks, schedules,
support-window search, the bundled corpus and topic-model metrics, reporting and plots, and the
``redge`` command line. Neither :mod:`pyro_redge` nor :mod:`numpyro_redge` is imported here."""
