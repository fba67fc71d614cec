"""Sphinx configuration of the pyro-redge documentation site.

Build it from the project root (``pip install -e ".[docs]"`` first)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest

The API reference comes from the docstrings (reST, ``:param:`` fields) by autodoc; the tutorials are
the committed notebooks of ``tutorials/`` (``docs/tutorials`` is a link to that directory),
rendered with their stored outputs and never executed here; the doctest builder runs every ``>>>``
example of the documented docstrings.
"""

import os

import redge_core

# The doctest builder runs the docstring examples eagerly: JAX compiles each small operation once,
# and that compilation is most of the examples' cost; with fewer XLA passes they took a sixth less
# CPU here. They print shapes, dtypes and booleans, which the optimisation level does not change
# (the test suite and `redge demo --quick` make the same choice). Read by JAX when autodoc first
# imports it, after this file.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

project = "pyro-redge"
author = "the pyro-redge authors"
copyright = "the pyro-redge authors"
release = redge_core.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# -- autodoc -------------------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
# The signatures show the defaults as written (e.g. ``estimator=ReinMax(temperature=1.0)``), and
# the ``:param:`` fields carry the types: no type hints in the code to render.
autodoc_typehints = "none"
autoclass_content = "class"

# -- notebooks (myst-nb) ---------------------------------------------------------------------------
# The notebooks are committed with the outputs of a full run (tutorials/build_notebooks.py
# --execute): render those, never re-execute them during the docs build.
nb_execution_mode = "off"
# Anchors for the Markdown pages' headings, so that a page can link to a section of another.
myst_heading_anchors = 3

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "sphinx_rtd_theme"
html_title = f"pyro-redge {release}"
html_show_sourcelink = False


# -- cross-references to the flat public API ----------------------------------------------------
# The reference documents each class where it is defined for users (``pyro_redge.estimators.ReinMax``);
# docstrings often name it by its flat alias (``pyro_redge.ReinMax``, the import users write). Such a
# reference resolves to the documented object of the same name in the same package.


def _resolve_flat_alias(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    package, _, name = node["reftarget"].partition(".")
    if package not in ("pyro_redge", "numpyro_redge") or not name or "." in name:
        return None
    domain = env.get_domain("py")
    for fullname, _, _, _, _, _ in domain.get_objects():
        parent, _, leaf = fullname.rpartition(".")
        if leaf == name and parent.count(".") == 1 and parent.startswith(package + "."):
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], fullname, node, contnode)
    return None


def setup(app):
    app.connect("missing-reference", _resolve_flat_alias)
