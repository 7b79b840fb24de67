"""Name -> implementation tables (backbones, heads, readers, synthetic layouts) with one lookup error.

Every pluggable part is chosen by a name in a config file or on the command line, so a typo
must end in one clear line, the same for every kind: the kind, the unknown name, the valid
names and, when one is close, ``did you mean 'x'?``. :class:`Registry` gives each kind that
behaviour instead of a hand-written dict and message per kind.

An entry may be registered by ``"module:attribute"`` path (:meth:`Registry.register_lazy`):
listing or checking names then imports nothing, which keeps ``pare --help`` free of torch.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from pare_model.errors import UserFacingError

T = TypeVar("T")

SUGGESTION_CUTOFF = 0.6
"""Similarity (difflib ratio) above which an unknown name is taken for a typo of a valid one."""


class UnknownNameError(UserFacingError, LookupError):
    """A name that is not in a :class:`Registry`; the message lists the valid names."""

    def __str__(self) -> str:
        # One line even in subclasses that also derive from KeyError, whose __str__ would quote it.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class _Lazy:
    """An entry registered by ``"module:attribute"``; imported by the first :meth:`Registry.get`."""

    target: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


_NOTHING: Any = object()
"""Marks ``register(name)`` called without an entry (the decorator form)."""


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order; an unknown name raises ``error``.

    Args:
        kind: what the entries are, in the singular ("backbone", "reader"): it starts the
            error message.
        error: the :class:`UnknownNameError` subclass to raise, so callers can keep catching
            their specific exception.
        plural: the plural of ``kind`` if it is not ``kind + "s"``.
    """

    def __init__(self, kind: str, error: type[UnknownNameError] = UnknownNameError, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.error = error
        self._entries: dict[str, T | _Lazy] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: Any = _NOTHING) -> Any:
        """Add ``entry`` as ``name``; without ``entry``, a decorator that adds what it decorates."""
        if entry is _NOTHING:

            def decorate(decorated: T) -> T:
                self._add(name, decorated)
                return decorated

            return decorate
        self._add(name, entry)
        return entry

    def register_lazy(self, name: str, target: str) -> None:
        """Add the ``attribute`` of ``module`` (``target`` is ``"module:attribute"``), imported on first use."""
        module, colon, attribute = target.partition(":")
        if not (module and colon and attribute):
            raise ValueError(f"{self.kind} {name!r}: target {target!r} must be 'module:attribute'")
        self._add(name, _Lazy(target))

    def get(self, name: str) -> T:
        """The entry registered as ``name``, imported now if it was registered lazily."""
        self.check(name)
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = self._entries[name] = entry.load()
        return entry

    def check(self, name: str) -> None:
        """Raise the registry's :class:`UnknownNameError` unless ``name`` is registered (imports nothing)."""
        if name not in self:
            raise self.error(self.unknown_message(name))

    def names(self) -> tuple[str, ...]:
        """The registered names in registration order (the order of a matching ``Literal``)."""
        return tuple(self._entries)

    def unknown_message(self, name: object) -> str:
        """One line naming the kind, ``name``, the sorted valid names and the close one if any."""
        valid = sorted(self._entries)
        message = f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(valid)}"
        close = difflib.get_close_matches(name, valid, n=1, cutoff=SUGGESTION_CUTOFF) if isinstance(name, str) else []
        return f"{message}; did you mean {close[0]!r}?" if close else message

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def _add(self, name: str, entry: T | _Lazy) -> None:
        """Store ``entry``; a name registered twice is a bug in the code, not a user error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered; give the new one another name")
        self._entries[name] = entry
