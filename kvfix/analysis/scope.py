"""Which streams a command looks at: ``--namespace``, ``--stream`` and ``--match``.

An operator migrates one tenant or one stream first, or checks only those.  A scoped run
reports the chosen streams and their dead versions; orphans and the records of keys that
are no stream at all are found only by a run over the whole database (finding them means
reading every key incarnation, which is what a scope avoids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvfix.analysis.glob import Glob
from kvfix.textsafe import show


@dataclass(frozen=True)
class Scope:
    """Everything by default; otherwise the live streams every given filter accepts."""

    namespace: bytes | None = None
    streams: frozenset[bytes] = frozenset()
    match: bytes | None = None
    _glob: Glob | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.match is not None:
            object.__setattr__(self, "_glob", Glob(self.match))

    @property
    def everything(self) -> bool:
        return self.namespace is None and not self.streams and self.match is None

    def wants(self, namespace: bytes, key: bytes) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.streams and key not in self.streams:
            return False
        return self._glob is None or self._glob.match(key)

    def describe(self) -> str:
        """For people: "namespace tenant_a · streams orders, jobs · match user:*", or "" for everything."""
        parts = []
        if self.namespace is not None:
            parts.append(f"namespace {show(self.namespace)}")
        if self.streams:
            parts.append("streams " + ", ".join(show(k) for k in sorted(self.streams)))
        if self.match is not None:
            parts.append(f"match {show(self.match)}")
        return " · ".join(parts)

    def options(self) -> dict[str, object]:
        """For plan files and JSON: the filters as hex (None / [] when not given)."""
        return {
            "namespace_hex": None if self.namespace is None else self.namespace.hex(),
            "streams_hex": sorted(k.hex() for k in self.streams),
            "match_hex": None if self.match is None else self.match.hex(),
        }


EVERYTHING = Scope()
