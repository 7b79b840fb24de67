"""argparse types for numeric options: a value outside its range is refused by the parser, as one line naming the
option, before the command starts (``--samples -1`` used to do nothing and exit 0)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    """A type for a whole number in ``low..high`` (no upper bound when ``high`` is None)."""
    span = f"from {low} to {high}" if high is not None else f"at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its message for a ValueError
    return parse
