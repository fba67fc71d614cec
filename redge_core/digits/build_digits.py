"""Rebuild ``redge_core/digits/data/digits.npz`` from its source.

The source is the copy of the UCI optical-recognition-of-handwritten-digits test set that
scikit-learn ships in its wheel (``sklearn/datasets/data/digits.csv.gz``: 1 797 images of 8 x 8
pixels with counts 0..16, the label in the last column). scikit-learn itself is not needed; only
its wheel is read::

    pip download --no-deps scikit-learn -d /tmp/sklearn
    python -m redge_core.digits.build_digits /tmp/sklearn/scikit_learn-*.whl

The file keeps the pixel counts as they are (``uint8``) and the labels; binarising is
:func:`redge_core.digits.load_digits`'s job.
"""

import argparse
import gzip
import io
import pathlib
import zipfile

import numpy as np

MEMBER = "sklearn/datasets/data/digits.csv.gz"
OUTPUT = pathlib.Path(__file__).parent / "data" / "digits.npz"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="path to a scikit-learn wheel")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        table = np.loadtxt(io.BytesIO(gzip.decompress(wheel.read(MEMBER))), delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16 or table[:, 64].max() > 9:
        raise ValueError(f"{MEMBER} is not the 1 797 x (64 pixels + label) table this module expects: {table.shape}")
    np.savez_compressed(args.output, pixels=table[:, :64].astype(np.uint8), labels=table[:, 64].astype(np.uint8))
    print(f"wrote {args.output}: {table.shape[0]} images")


if __name__ == "__main__":
    main()
