"""File names made from data (shard keys, sequence names): one plain name inside the output folder.

Every place that turns a value read from a file into part of an output path goes through
:func:`safe_file_name`, so a shard key such as ``../../x``, ``/etc/x`` or one holding NUL or control
characters can neither leave the folder nor break the write.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 80
"""Longest name kept from the value (a hash suffix adds 9 characters when the name changed)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_DOTS = re.compile(r"\.{2,}")


def safe_file_name(value: str) -> str:
    """``value`` if it is a plain name, else a plain name made from it plus a hash of the original.

    Kept: ASCII letters, digits, ``_``, ``-`` and single dots not at the start. Anything else
    (path separators, ``..``, NUL, control and non-ASCII characters) becomes ``_``, and the name
    is cut to :data:`MAX_LENGTH`. A changed name ends in ``-`` and 8 hex digits of the sha256 of
    ``value``, so two values never share a name by being cleaned alike, and the same value always
    gives the same name.
    """
    name = _DOTS.sub("_", _UNSAFE.sub("_", value)).lstrip(".")[:MAX_LENGTH]
    if name == value and name:
        return name
    return f"{name}-{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def printable_text(value: str) -> str:
    """``value`` for a picture's title or a console line: control characters (NUL, newlines, escapes) shown as
    their backslash escapes, so that a hostile key neither breaks the line nor asks a font for a glyph it lacks."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in value)
