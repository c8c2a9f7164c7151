"""Plans as files: review a plan, then apply exactly that plan (Terraform's plan/apply).

A plan file is JSON Lines: a header (the database's identity and state when planned,
the options, the summary and a SHA-256 digest of every line after the header), then one
line per write, in the order they are written.  It is written streamed, in constant
memory, and atomically (a temporary file renamed into place).  Applying a plan file
recomputes the plan under the write lock and refuses, before any write, unless it gives
exactly these lines: the first line that differs is named.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kvfix.errors import WriteFailed, WriteRefused
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.textsafe import show, show_path

FORMAT = "kvfix-plan/1"


def migration_lines(sp: StreamPlan) -> Iterator[dict[str, Any]]:
    """Every write of one stream's migration plan, as its batch writes them."""
    where = {"namespace": show(sp.namespace), "stream": show(sp.key)}
    for d in sp.drops():
        yield {
            "op": "drop", **where, "kind": d.kind, "group": show(d.group), "key_hex": d.key.hex(),
            "value_len": d.value_len, "value_sha256": d.value_sha256, "reason": d.reason,
        }  # fmt: skip
    for r in sp.rewrites():
        yield {
            "op": "rewrite", **where, "kind": r.kind, "group": show(r.group), "old_key_hex": r.old_key.hex(),
            "new_key_hex": r.new_key.hex(), "value_len": r.value_len, "value_sha256": r.value_sha256,
        }  # fmt: skip
    if sp.metadata is not None:
        m = sp.metadata
        yield {"op": "metadata", **where, "key_hex": m.key.hex(), "old_hex": m.old.hex(), "new_hex": m.new.hex()}


def repair_lines(plans: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Every write of a repair plan (kvfix.analysis.repair_plan.StreamRepair), stream by stream."""
    for p in plans:
        where = {"namespace": show(p.namespace), "stream": show(p.key)}
        for w in p.puts:
            yield {"op": "put", **where, "cf": w.cf, "key_hex": w.key.hex(), "value_hex": w.value.hex(), "what": w.what}


def encode_line(line: dict[str, Any]) -> bytes:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


class PlanFileWriter:
    """A plan file written as its lines come: they go to a temporary body, and :meth:`finish`
    puts the header (with their count and digest) first, then renames the whole into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._body_path = path.with_name(path.name + ".body.tmp")
        with self._failing():
            self._body = open(self._body_path, "wb")  # noqa: SIM115  (closed by finish or abort)
        self._sha = hashlib.sha256()
        self.lines = 0

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """An OSError (no such directory, a full disk) as one line naming the operator's file."""
        try:
            yield
        except OSError as exc:
            self.abort()
            raise WriteFailed(f"{show_path(self.path)}: cannot write the plan file ({exc.strerror or exc})") from exc

    def add(self, lines: Iterable[dict[str, Any]]) -> None:
        self.add_raw(map(encode_line, lines))

    def add_raw(self, raws: Iterable[bytes]) -> None:
        """Encoded lines (:func:`encode_line`)."""
        with self._failing():
            for raw in raws:
                self._sha.update(raw)
                self._body.write(raw)
                self.lines += 1

    def finish(self, header: dict[str, Any], info: dict[str, Any]) -> None:
        """``header`` is what applying the file compares, ``info`` is there for people."""
        with self._failing():
            self._finish(header, info)

    def _finish(self, header: dict[str, Any], info: dict[str, Any]) -> None:
        self._body.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f, open(self._body_path, "rb") as body:
            f.write(
                encode_line({"format": FORMAT, **header, **info, "lines": self.lines, "digest": self._sha.hexdigest()})
            )
            while block := body.read(1 << 20):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.unlink(self._body_path)

    def abort(self) -> None:
        body = getattr(self, "_body", None)
        if body is not None:
            body.close()
        for leftover in (self._body_path, self.path.with_name(self.path.name + ".tmp")):
            with suppress(OSError):  # none there (or no such directory): nothing to remove
                leftover.unlink()


def save(path: Path, header: dict[str, Any], info: dict[str, Any], lines: Iterable[dict[str, Any]]) -> None:
    writer = PlanFileWriter(path)
    try:
        writer.add(lines)
    except BaseException:
        writer.abort()
        raise
    writer.finish(header, info)


def read_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError) as exc:
        raise WriteRefused(f"{show_path(path)}: not a readable kvfix plan file ({exc}); nothing written") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise WriteRefused(f"{show_path(path)}: not a kvfix plan file (no {FORMAT} header); nothing written")
    return header


class PlanFileCheck:
    """A saved plan compared with the plan made now, line by line as it is made; the first
    difference is kept (:meth:`finish`), nothing else."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        saved = read_header(path)
        self.difference: str | None = None
        for key, value in header.items():
            if saved.get(key) != value:
                self.difference = f"{key} was {json.dumps(saved.get(key))} when planned, is {json.dumps(value)} now"
                break
        self._digest = saved.get("digest")
        self._file = open(path, "rb")  # noqa: SIM115  (closed by finish)
        self._file.readline()
        self._n = 1
        self._sha = hashlib.sha256()

    def add(self, lines: Iterable[dict[str, Any]]) -> None:
        self.add_raw(map(encode_line, lines))

    def add_raw(self, raws: Iterable[bytes]) -> None:
        """Encoded lines (:func:`encode_line`)."""
        for now in raws:
            if self.difference is not None:
                return
            was = self._file.readline()
            self._n += 1
            if was != now:
                self.difference = f"line {self._n}: the file has {_brief(was)}, the database now gives {_brief(now)}"
            self._sha.update(now)

    def finish(self) -> str | None:
        """None when the file holds exactly the header's fields and the lines given; else what differs first."""
        with self._file as f:
            if self.difference is None:
                extra = f.readline()
                if extra:
                    self.difference = f"the file has more writes than the database now gives (from {_brief(extra)})"
                elif self._sha.hexdigest() != self._digest:
                    self.difference = "the file's lines do not match its own digest (edited or damaged)"
        return self.difference


class LinesPart:
    """A second process's plan lines (kvfix.migrations.plan_parts), compressed in a file of
    its own: the parent writes or compares them after its own (:meth:`raws`).  It pickles
    as its path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None
        self._deflate: Any = None

    def __getstate__(self) -> dict[str, Any]:
        self.close()
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def add(self, sp: StreamPlan) -> None:
        if self._file is None:
            self._file, self._deflate = open(self.path, "wb"), zlib.compressobj(1)  # noqa: SIM115  (closed by close)
        self._file.write(self._deflate.compress(b"".join(map(encode_line, migration_lines(sp)))))

    def close(self) -> None:
        if self._file is not None:
            self._file.write(self._deflate.flush())
            self._file.close()
            self._file = None

    def raws(self) -> Iterator[bytes]:
        """Each encoded line, in order (none if nothing was added)."""
        if not self.path.exists():
            return
        inflate, rest = zlib.decompressobj(), b""
        with open(self.path, "rb") as f:
            while block := f.read(1 << 16):
                rest += inflate.decompress(block)
                *lines, rest = rest.split(b"\n")
                for line in lines:
                    yield line + b"\n"
        rest += inflate.flush()
        for line in rest.split(b"\n")[:-1]:
            yield line + b"\n"


def first_difference(path: Path, header: dict[str, Any], lines: Iterable[dict[str, Any]]) -> str | None:
    """None when the file holds exactly ``header``'s fields and ``lines``; else what differs first."""
    check = PlanFileCheck(path, header)
    check.add(lines)
    return check.finish()


def _brief(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return (text[:160] + "…") if len(text) > 160 else (text or "nothing")


def refuse_unless_same(path: Path, header: dict[str, Any], lines: Iterable[dict[str, Any]], remake: str) -> None:
    """Raise WriteRefused (nothing written) naming the first difference, unless the file holds this plan."""
    refuse_difference(path, first_difference(path, header, lines), remake)


def refuse_difference(path: Path, diff: str | None, remake: str) -> None:
    if diff is not None:
        raise WriteRefused(
            f"{show_path(path)}: the database no longer gives this plan ({diff}); nothing written; "
            f"make a new one with {remake}"
        )
