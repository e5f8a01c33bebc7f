"""The commands' checks of numbers, as argparse ``type``\\ s: a bad one is a one-line error
naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def positive_of(kind: type, noun: str) -> Callable[[str], Any]:
    """An argparse ``type`` accepting numbers of ``kind`` greater than zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}")
        return value

    parse.__name__ = f"positive {noun}"
    return parse


positive = positive_of(int, "integer")
positive_float = positive_of(float, "number")


def clip_norm(text: str) -> float:
    """``--clip``: a positive number, or 0 for no clipping (a negative one is refused, not
    read as 'no clipping')."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value >= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, or 0 for no clipping, got {text!r}"
        )
    return value
