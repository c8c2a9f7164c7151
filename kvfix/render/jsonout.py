"""JSON output helpers: bytes as (text, hex) pairs, streamed writing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from kvfix.textsafe import show

INDENT = 2


def text_and_hex(prefix: str, data: bytes) -> dict[str, str]:
    return {prefix: show(data), f"{prefix}_hex": data.hex()}


class Lazy:
    """A JSON array produced one element at a time while it is written (see :func:`dump`)."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


def dump(obj: Any, out: IO[str] | None = None) -> None:
    """Write JSON (indent 2) incrementally, ending with a newline.

    Dicts and lists are written member by member, and a :class:`Lazy` array element by
    element as its generator produces them, so a report with many streams is never held
    as one document (or one string).  The bytes equal ``json.dump(obj, indent=2,
    ensure_ascii=False)`` with every Lazy replaced by a list, except that a string holding
    a lone surrogate (a non-UTF-8 path byte, surrogateescape) is written ``\\udcNN``, so the
    output is always valid UTF-8.  Names and paths should come as :func:`show` text anyway.
    """
    out = out or sys.stdout
    _write(obj, out, 0)
    out.write("\n")


def _has_lazy(obj: Any) -> bool:
    if isinstance(obj, Lazy):
        return True
    if isinstance(obj, dict):
        return any(_has_lazy(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_lazy(v) for v in obj)
    return False


def _write(obj: Any, out: IO[str], level: int) -> None:
    if isinstance(obj, dict) and _has_lazy(obj):
        members = ((_dumps(str(k)) + ": ", v) for k, v in obj.items())
        _container(members, "{", "}", out, level)
    elif isinstance(obj, list | Lazy) and (isinstance(obj, Lazy) or _has_lazy(obj)):
        _container((("", v) for v in obj), "[", "]", out, level)
    else:
        text = _dumps(obj)
        out.write(text.replace("\n", "\n" + " " * (INDENT * level)) if level and "\n" in text else text)


def _dumps(obj: Any) -> str:
    text = json.dumps(obj, indent=INDENT, ensure_ascii=False)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only \\u escapes are valid UTF-8 for them
        return json.dumps(obj, indent=INDENT, ensure_ascii=True)
    return text


def _container(members: Iterator[tuple[str, Any]], open_: str, close: str, out: IO[str], level: int) -> None:
    pad = " " * (INDENT * (level + 1))
    first = True
    for head, value in members:
        out.write((open_ + "\n" if first else ",\n") + pad + head)
        first = False
        _write(value, out, level + 1)
    out.write(open_ + close if first else "\n" + " " * (INDENT * level) + close)
