"""JSON output helpers: bytes as (text, hex) pairs, integers JSON readers keep, streamed writing."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from kvfix.analysis.findings import Finding
from kvfix.textsafe import show

INDENT = 2
#: The largest integer a JSON reader that uses doubles (JavaScript, jq) keeps exactly.
MAX_SAFE_INT = 2**53 - 1
_COMPACT = (",", ":")


class _Streamed(Exception):
    """Raised by the encoders on meeting a :class:`Lazy`: the value is written member by member."""


def _refuse(obj: Any) -> Any:
    if isinstance(obj, Lazy):
        raise _Streamed
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


#: (indent, ensure_ascii) -> encoder, made once: json.dumps with options builds one per call.
_ENCODERS = {
    (indent, ascii_): json.JSONEncoder(
        indent=indent,
        separators=(",", ": ") if indent else _COMPACT,
        ensure_ascii=ascii_,
        check_circular=False,
        default=_refuse,
    )
    for indent in (None, INDENT)
    for ascii_ in (False, True)
}


def text_and_hex(prefix: str, data: bytes) -> dict[str, str]:
    return {prefix: show(data), f"{prefix}_hex": data.hex()}


def safe_int(n: int | None) -> int | str | None:
    """``n``, or its decimal string beyond ±(2^53-1): a counter read from damaged data can be any u64."""
    if n is None or -MAX_SAFE_INT <= n <= MAX_SAFE_INT:
        return n
    return str(n)


def safe_value(v: Any) -> Any:
    """:func:`safe_int` applied to every integer of a small free-form value (finding details)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return safe_int(v)
    if isinstance(v, dict):
        return {k: safe_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [safe_value(x) for x in v]
    return v


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding, as scan, check and stats JSON give it."""
    out: dict[str, Any] = {
        "severity": f.severity,
        "code": f.code,
        "namespace": None if f.namespace is None else show(f.namespace),
        "key": None if f.key is None else show(f.key),
        "key_hex": None if f.key is None else f.key.hex(),
        "message": f.message,
    }
    if f.details:
        out["details"] = safe_value(f.details)
    return out


class Lazy:
    """A JSON array produced one element at a time while it is written (see :func:`dump`)."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


def dump(obj: Any, out: IO[str] | None = None, pretty: bool | None = None) -> None:
    """Write JSON incrementally, ending with a newline: compact, or indented by 2 with ``pretty``.

    ``pretty`` None takes the command's view (``--pretty``, :func:`kvfix.render.document.current_view`).
    A value is one call of json's encoder (the C one when compact); one that holds a
    :class:`Lazy` (the encoder stops on it) is written member by member instead, and a Lazy
    array element by element as its generator produces them, so a report with many streams
    is never held as one document (or one string).  The bytes equal ``json.dumps(obj, ensure_ascii=False)``
    with ``separators=(",", ":")`` (compact) or ``indent=2`` (pretty), every Lazy replaced by
    a list, except that a string holding a lone surrogate (a non-UTF-8 path byte,
    surrogateescape) is written ``\\udcNN``, so the output is always valid UTF-8.  Names and
    paths should come as :func:`show` text anyway.
    """
    if pretty is None:
        from kvfix.render.document import current_view

        pretty = current_view().pretty
    out = out or sys.stdout
    if pretty:
        _write_pretty(obj, out, 0)
    else:
        _write_compact(obj, out)
    out.write("\n")


def _dumps(obj: Any, indent: int | None) -> str:
    """One value in one encoder call; raises _Streamed if it holds a Lazy."""
    if indent is not None:
        _collect_now_and_then()
    text = _ENCODERS[(indent, False)].encode(obj)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only \\u escapes are valid UTF-8 for them
        return _ENCODERS[(indent, True)].encode(obj)
    return text


def _whole(obj: Any, indent: int | None) -> str | None:
    """``obj`` encoded at once, or None when it holds a Lazy (then it is written member by member)."""
    if isinstance(obj, Lazy):
        return None
    try:
        return _dumps(obj, indent)
    except _Streamed:
        return None


def _write_compact(obj: Any, out: IO[str]) -> None:
    text = _whole(obj, None)
    if text is not None:
        out.write(text)
    elif isinstance(obj, dict):
        out.write("{")
        for i, (k, v) in enumerate(obj.items()):
            out.write(("," if i else "") + _dumps(str(k), None) + ":")
            _write_compact(v, out)
        out.write("}")
    else:
        out.write("[")
        for i, v in enumerate(obj):
            if i:
                out.write(",")
            _write_compact(v, out)
        out.write("]")


def _write_pretty(obj: Any, out: IO[str], level: int) -> None:
    text = _whole(obj, INDENT)
    if text is not None:
        out.write(text.replace("\n", "\n" + " " * (INDENT * level)) if level and "\n" in text else text)
    elif isinstance(obj, dict):
        members = ((_dumps(str(k), INDENT) + ": ", v) for k, v in obj.items())
        _container(members, "{", "}", out, level)
    else:
        _container((("", v) for v in obj), "[", "]", out, level)


def _container(members: Iterator[tuple[str, Any]], open_: str, close: str, out: IO[str], level: int) -> None:
    pad = " " * (INDENT * (level + 1))
    first = True
    for head, value in members:
        out.write((open_ + "\n" if first else ",\n") + pad + head)
        first = False
        _write_pretty(value, out, level + 1)
    out.write(open_ + close if first else "\n" + " " * (INDENT * level) + close)


#: Indented encodings between two collections of the cyclic GC's youngest generation.
_COLLECT_EVERY = 256
_indented = [0]


def _collect_now_and_then() -> None:
    """json encodes with ``indent`` in Python, through closures that refer to each other: a
    cycle per call, freed only by the cyclic GC, which walks pause (kvfix.analysis.walk.
    paused_gc).  Without this, --pretty held ~7 KB per stream until the walk's end."""
    _indented[0] += 1
    if _indented[0] >= _COLLECT_EVERY:
        _indented[0] = 0
        gc.collect(0)


class DocumentWriter:
    """One top-level JSON object written member by member, one array element by element.

    For documents whose parts are known one after the other (a scan's streams while it
    runs, its totals at the end): the bytes equal :func:`dump` of the same object.
    """

    def __init__(self, out: IO[str], pretty: bool) -> None:
        self.out, self.pretty = out, pretty
        self._members = 0
        self._elements = -1  # -1: not inside an array

    def _key(self, key: str) -> None:
        out = self.out
        if self.pretty:
            out.write(("{\n" if not self._members else ",\n") + " " * INDENT + _dumps(key, INDENT) + ": ")
        else:
            out.write(("{" if not self._members else ",") + _dumps(key, None) + ":")
        self._members += 1

    def member(self, key: str, value: Any) -> None:
        self._key(key)
        if self.pretty:
            _write_pretty(value, self.out, 1)
        else:
            _write_compact(value, self.out)

    def open_array(self, key: str) -> None:
        self._key(key)
        self.out.write("[")
        self._elements = 0

    def element(self, value: Any) -> None:
        self.raw_element(None, value)

    def raw_element(self, text: str | None, value: Any = None) -> None:
        """An element given as its encoded text (from :class:`ElementSpool`), or as a value."""
        out = self.out
        if self.pretty:
            out.write(("\n" if not self._elements else ",\n") + " " * (2 * INDENT))
        elif self._elements:
            out.write(",")
        self._elements += 1
        if text is not None:
            out.write(text)
        elif self.pretty:
            _write_pretty(value, out, 2)
        else:
            _write_compact(value, out)

    def close_array(self) -> None:
        if self.pretty and self._elements:
            self.out.write("\n" + " " * INDENT)
        self.out.write("]")
        self._elements = -1

    def close(self) -> None:
        if self.pretty:
            self.out.write("\n}" if self._members else "{}")
        else:
            self.out.write("}" if self._members else "{}")
        self.out.write("\n")


class ElementSpool:
    """Array elements encoded now and written later, kept in a temporary file once large.

    With ``path``, in that file from the start: then it pickles (closed, as its path), so
    a second process's elements reach its parent (kvfix.analysis.sharded).
    """

    def __init__(self, pretty: bool, path: Path | None = None) -> None:
        import tempfile

        self.pretty = pretty
        self._path = path
        self._file: IO[str]
        if path is None:
            self._file = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8")  # noqa: SIM115  (closed by copy_to)
        else:
            self._file = open(path, "w+", encoding="utf-8")  # noqa: SIM115  (closed by copy_to or pickling)
        self._count = 0

    def __getstate__(self) -> dict[str, Any]:
        if self._path is None:
            raise TypeError("only an ElementSpool with a path pickles")
        self._file.close()
        return {"pretty": self.pretty, "path": self._path, "count": self._count}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An empty spool (going to the process that fills it) opens for writing, a filled
        one (coming back) for reading."""
        self.pretty, self._path, self._count = state["pretty"], state["path"], state["count"]
        mode = "w+" if self._count == 0 else "r"
        self._file = open(self._path, mode, encoding="utf-8")  # noqa: SIM115  (closed by copy_to)

    def add(self, value: Any) -> None:
        """One element; one that holds a :class:`Lazy` is written as it is produced."""
        text = _whole(value, INDENT if self.pretty else None)
        if text is None:
            if self.pretty:
                _write_pretty(value, self._file, 2)
            else:
                _write_compact(value, self._file)
            self._file.write(_SEPARATOR)
        else:
            if self.pretty and "\n" in text:
                text = text.replace("\n", "\n" + " " * (2 * INDENT))
            self._file.write(text + _SEPARATOR)  # no encoded JSON holds a raw control character
        self._count += 1

    def extend(self, later: ElementSpool) -> None:
        """Append another spool's elements (as encoded there), emptying it."""
        write = self._file.write
        for text in later.texts():
            write(text + _SEPARATOR)
            self._count += 1

    def copy_to(self, doc: DocumentWriter) -> None:
        for text in self.texts():
            doc.raw_element(text)

    def texts(self) -> Iterator[str]:
        """Each element's encoded text, in order; the spool is closed after the last."""
        f = self._file
        f.seek(0)
        rest = ""
        while True:
            block = f.read(1 << 16)
            if not block:
                break
            parts = (rest + block).split(_SEPARATOR)
            rest = parts.pop()
            yield from parts
        f.close()


_SEPARATOR = "\x00"


class ReportWriter:
    """A report written while the walk runs: its head, then each stream's object as it is
    finished, then the totals, every finding (the report's own, then the streams', which
    wait in an :class:`ElementSpool`) and what comes after.  scan and check JSON."""

    def __init__(self, out: IO[str], pretty: bool) -> None:
        self.doc = DocumentWriter(out, pretty)
        self.spool = ElementSpool(pretty)

    def begin(self, head: dict[str, Any]) -> None:
        for key, value in head.items():
            self.doc.member(key, value)
        self.doc.open_array("streams")

    def stream(self, obj: Any, findings: Iterable[Any]) -> None:
        self.doc.element(obj)
        for f in findings:
            self.spool.add(f)

    def join(self, part: JsonPart) -> None:
        """Take in a second process's streams (they follow ours) and their findings."""
        part.streams.copy_to(self.doc)
        self.spool.extend(part.findings)

    def finish(self, totals: dict[str, Any], findings: Iterable[Any], after: dict[str, Any]) -> None:
        self.doc.close_array()
        for key, value in totals.items():
            self.doc.member(key, value)
        self.doc.open_array("findings")
        for f in findings:
            self.doc.element(f)
        self.spool.copy_to(self.doc)
        self.doc.close_array()
        for key, value in after.items():
            self.doc.member(key, value)
        self.doc.close()


class JsonPart:
    """What :meth:`ReportWriter.stream` writes, for a second process's streams: each
    stream's element and its findings, encoded as the writer would, in files of
    ``workdir``; it pickles, and :meth:`ReportWriter.join` takes it in."""

    def __init__(self, workdir: Path, pretty: bool) -> None:
        self.streams = ElementSpool(pretty, workdir / "streams.json")
        self.findings = ElementSpool(pretty, workdir / "findings.json")

    def stream(self, obj: Any, findings: Iterable[Any]) -> None:
        self.streams.add(obj)
        for f in findings:
            self.findings.add(f)
