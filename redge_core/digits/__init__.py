"""The 8 x 8 handwritten digits the discrete-VAE benchmarks train on, shipped with the package
(``data/digits.npz``, 45 kB; source and license in ``data/ATTRIBUTION.md``)."""

import pathlib

import numpy as np

DATA = pathlib.Path(__file__).parent / "data" / "digits.npz"
MAX_PIXEL = 16


def load_digits(binarize=True):
    """The 1 797 images of the UCI handwritten-digits test set as rows of 64 pixels, and their
    labels.

    :param bool binarize: if true (default), a pixel is 1 where more than half of its 4 x 4 block
        was inked (count > 8 of 16) and 0 elsewhere, as ``float32``; if false, the counts 0..16 as
        ``uint8``.
    :returns: ``(images, labels)``, arrays of shapes ``(1797, 64)`` and ``(1797,)``.

    Example::

        >>> from redge_core.digits import load_digits
        >>> images, labels = load_digits()
        >>> images.shape, sorted(set(images.ravel().tolist())), int(labels.max())
        ((1797, 64), [0.0, 1.0], 9)
    """
    if not isinstance(binarize, bool):
        raise TypeError(f"binarize must be True or False, got {binarize!r}")
    with np.load(DATA) as data:
        pixels, labels = data["pixels"], data["labels"]
    if binarize:
        return (pixels > MAX_PIXEL // 2).astype(np.float32), labels
    return pixels, labels
