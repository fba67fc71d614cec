"""The digits shipped for the discrete-VAE benchmarks: the UCI test set as scikit-learn ships it,
unchanged, and binarised at half of a block's ink."""

import numpy as np
import pytest

from redge_core.digits import load_digits


def test_the_shipped_digits_are_the_uci_test_set():
    counts, labels = load_digits(binarize=False)
    assert counts.shape == (1797, 64) and counts.dtype == np.uint8 and labels.shape == (1797,)
    assert counts.min() == 0 and counts.max() == 16
    # Images per digit in sklearn.datasets.load_digits().target (scikit-learn 1.9.1).
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # The first image of scikit-learn's copy, a zero.
    assert labels[0] == 0 and counts[0, :16].tolist() == [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]


def test_binarised_digits_are_pixels_inked_over_half():
    counts, _ = load_digits(binarize=False)
    images, _ = load_digits()
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, (counts > 8).astype(np.float32))


def test_binarize_must_be_a_bool():
    with pytest.raises(TypeError, match="binarize must be True or False"):
        load_digits(binarize="yes")
