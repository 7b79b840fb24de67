"""A JSON document's top-level arrays, one element at a time: large annotation files without their whole tree.

COCO's keypoint files and EFT's fit files are single JSON objects whose bulk is one or two arrays
(``images`` and ``annotations``; ``data``). Parsed whole, Python's objects for them take 5 to 6
times the file's bytes. :func:`stream_object` reads the file in blocks and hands each element of
the arrays it is asked for to a callback as soon as it is parsed, so memory holds one element at a
time. Every value is parsed by the standard library's :class:`json.JSONDecoder` (its C scanner),
so the elements are exactly what ``json.loads`` of the whole file holds: the same floats, and
``NaN`` and ``Infinity``, which EFT's tools write and read, are accepted as they are there.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from typing import IO, Any

from preprocessing.readers.files import SourceError

BLOCK_CHARS = 1 << 22
"""Characters read at a time."""
LOOKAHEAD = 4096
"""Characters kept ahead of a value before parsing it, so that a number is never cut at the end of a block."""
MAX_ELEMENT_CHARS = 1 << 28
"""Largest element (256 M characters): beyond that the file is damaged, not an annotation file."""

_SPACE = re.compile(r"[ \t\n\r]*")


class _Broken(ValueError):
    """The text is not valid JSON at ``position`` (characters from the start)."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message, self.position = message, position


class _Text:
    """The decoded text of a binary stream, read in blocks; ``pos`` is the next character to look at."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        head = raw.read(4)
        self.decoder = codecs.getincrementaldecoder(json.detect_encoding(head) if head else "utf-8")()
        self.text = self.decoder.decode(head)
        self.pos = 0
        self.consumed = 0  # characters dropped before text[0]
        self.eof = not head
        self.scanner = json.JSONDecoder()

    def _fill(self) -> None:
        data = self.raw.read(BLOCK_CHARS)
        self.eof = not data
        self.consumed += self.pos
        self.text = self.text[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the text)."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or self.eof:
                return self.text[self.pos : self.pos + 1]
            self._fill()

    def expect(self, characters: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            what = " or ".join(repr(c) for c in characters)
            raise _Broken(f"Expecting {what}, found {found or 'the end of the file'!r}", self.consumed + self.pos)
        self.pos += 1
        return found

    def value(self) -> Any:
        """Parse the value at the current position."""
        self.peek()
        while len(self.text) - self.pos < LOOKAHEAD and not self.eof:
            self._fill()
        while True:
            try:
                value, end = self.scanner.raw_decode(self.text, self.pos)
                if end < len(self.text) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError as error:
                if not self._cut(error):
                    raise _Broken(error.msg, self.consumed + error.pos) from None
            self._fill()

    def _cut(self, error: json.JSONDecodeError) -> bool:
        """Whether the value failed only because the text read so far ends inside it (more may complete it)."""
        if self.eof or len(self.text) - self.pos > MAX_ELEMENT_CHARS:
            return False
        return error.msg.startswith("Unterminated string") or error.pos >= len(self.text) - 64

    def at_end(self) -> bool:
        return self.peek() == ""


def _array(text: _Text, each: Callable[[Any], None]) -> None:
    """Hand each element of the array at the current position (its ``[`` is next) to ``each``."""
    text.expect("[")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        each(text.value())
        if text.expect(",]") == "]":
            return


def _members(text: _Text, arrays: dict[str, Callable[[Any], None]], streamed: set[str]) -> dict[str, Any]:
    text.expect("{")
    members: dict[str, Any] = {}
    if text.peek() == "}":
        text.pos += 1
        return members
    while True:
        start = text.consumed + text.pos
        key = text.value()
        if not isinstance(key, str):
            raise _Broken("Expecting property name enclosed in double quotes", start)
        text.expect(":")
        if key in arrays and text.peek() == "[":
            if key in streamed:
                raise _Broken(f"the member {key!r} appears twice", start)
            streamed.add(key)
            _array(text, arrays[key])
        else:
            members[key] = text.value()
        if text.expect(",}") == "}":
            return members


def stream_object(
    raw: IO[bytes], arrays: dict[str, Callable[[Any], None]], what: str, url: str
) -> tuple[dict[str, Any], set[str]]:
    """Read the JSON object in ``raw``: each element of the top-level arrays named in ``arrays`` goes to its
    callback, in order. Returns the other members (parsed whole, as is a named member that is not an array)
    and the names of the arrays streamed.

    A file that is not valid JSON raises :class:`SourceError` naming ``what`` and ``url``, as ``json.loads`` of
    the whole file would fail. A top-level value that is not an object is returned as ``{"": value}``.
    """
    text = _Text(raw)
    streamed: set[str] = set()
    try:
        members = _members(text, arrays, streamed) if text.peek() == "{" else {"": text.value()}
        if not text.at_end():
            raise _Broken("Extra data", text.consumed + text.pos)
    except _Broken as error:
        raise SourceError(
            f"{what} {url} is not valid JSON ({error.message}: character {error.position}): "
            "the file is truncated or damaged, download it again"
        ) from None
    except UnicodeDecodeError as error:
        raise SourceError(
            f"{what} {url} is not valid JSON text ({error}): the file is damaged, download it again"
        ) from None
    return members, streamed
