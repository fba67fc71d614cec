"""Argument checks shared by both hosts: each raises a ``ValueError`` that names the argument and
the allowed values, before anything is computed or allocated."""

import math
import numbers


def check_positive(name, value):
    """A finite real ``value > 0``, or a ``ValueError`` naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")


def check_positive_integer(name, value):
    """An integer ``value ≥ 1``, or a ``ValueError`` naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_choice(name, value, choices):
    """One of ``choices``, or a ``ValueError`` naming the argument and the allowed values."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
