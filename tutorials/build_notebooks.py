"""Execute the committed tutorial notebooks in place, so that they carry the outputs of a full run.

Each ``tutorials/*.ipynb`` is its own single source: edit it in Jupyter (or as JSON), then run

    python tutorials/build_notebooks.py --execute [--only 02_topic_models]

to rerun it from top to bottom and write its outputs. ``REDGE_TUTORIAL_SMOKE=1`` shrinks every
budget and leaves the files unchanged (the test suite runs each notebook that way, see
``tests/test_tutorials.py``). Without ``--execute`` the notebooks are listed with the state of
their outputs.
"""

import argparse
import os
import pathlib
import time

import nbformat

HERE = pathlib.Path(__file__).parent
NOTEBOOKS = sorted(path.stem for path in HERE.glob("*.ipynb"))


def smoke():
    return os.environ.get("REDGE_TUTORIAL_SMOKE") == "1"


def execute(name, timeout=1800):
    """Run notebook ``name`` (stem, e.g. ``02_topic_models``) in a fresh kernel in the tutorials
    folder; write it back with its outputs unless in smoke mode. Returns the seconds taken."""
    from nbclient import NotebookClient

    path = HERE / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    if not smoke():
        nbformat.write(notebook, path)
    return time.perf_counter() - start


def resolve(name):
    """The notebook stem that ``name`` (a stem, a file name or a unique prefix such as ``02``)
    designates, or an ``argparse`` error."""
    stem = pathlib.Path(name).name.removesuffix(".ipynb")
    matches = [notebook for notebook in NOTEBOOKS if notebook == stem] or [
        notebook for notebook in NOTEBOOKS if notebook.startswith(stem)
    ]
    if len(matches) != 1:
        raise argparse.ArgumentTypeError(f"{name!r} names none or several of {', '.join(NOTEBOOKS)}")
    return matches[0]


def has_outputs(name):
    notebook = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    return any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run the notebooks and write their outputs")
    parser.add_argument(
        "--only",
        action="append",
        type=resolve,
        metavar="NAME",
        help=f"this notebook only (repeatable; a prefix such as 02 is enough): {', '.join(NOTEBOOKS)}",
    )
    args = parser.parse_args(argv)
    names = args.only or NOTEBOOKS
    for name in names:
        if args.execute:
            seconds = execute(name)
            print(f"executed {name} in {seconds:.0f} s" + (" (smoke mode: not written)" if smoke() else ""), flush=True)
        else:
            print(f"{name}: {'with' if has_outputs(name) else 'WITHOUT'} outputs")
    if not args.execute:
        print("(--execute reruns them and writes their outputs)")


if __name__ == "__main__":
    main()
