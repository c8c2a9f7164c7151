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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kvfix.errors import WriteRefused
from kvfix.migrations.base import Plan
from kvfix.textsafe import show, show_path

FORMAT = "kvfix-plan/1"


def migration_lines(plan: Plan) -> Iterator[dict[str, Any]]:
    """Every write of a migration plan, stream by stream, as its batch writes them."""
    for sp in plan.streams:
        where = {"namespace": show(sp.namespace), "stream": show(sp.key)}
        for d in sp.drops:
            yield {
                "op": "drop", **where, "kind": d.kind, "group": show(d.group), "key_hex": d.key.hex(),
                "value_len": d.value_len, "value_sha256": d.value_sha256, "reason": d.reason,
            }  # fmt: skip
        for r in sp.rewrites:
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


def _encode(line: dict[str, Any]) -> bytes:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


def digest(lines: Iterable[dict[str, Any]]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for line in lines:
        h.update(_encode(line))
        n += 1
    return h.hexdigest(), n


def save(
    path: Path,
    header: dict[str, Any],
    info: dict[str, Any],
    lines: Iterable[dict[str, Any]],
    again: Iterable[dict[str, Any]],
) -> None:
    """Write the header (``header`` is what applying compares, ``info`` is for people, plus
    the digest of ``lines``), then ``again``: the same lines from a second pass."""
    sha, n = digest(lines)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_encode({"format": FORMAT, **header, **info, "lines": n, "digest": sha}))
        for line in again:
            f.write(_encode(line))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError) as exc:
        raise WriteRefused(f"{show_path(path)}: not a readable kvfix plan file ({exc}); nothing written") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise WriteRefused(f"{show_path(path)}: not a kvfix plan file (no {FORMAT} header); nothing written")
    return header


def first_difference(path: Path, header: dict[str, Any], lines: Iterable[dict[str, Any]]) -> str | None:
    """None when the file holds exactly ``header``'s fields and ``lines``; else what differs first."""
    saved = read_header(path)
    for key, value in header.items():
        if saved.get(key) != value:
            return f"{key} was {json.dumps(saved.get(key))} when planned, is {json.dumps(value)} now"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.readline()
        for n, line in enumerate(lines, 2):
            now = _encode(line)
            was = f.readline()
            if was != now:
                return f"line {n}: the file has {_brief(was)}, the database now gives {_brief(now)}"
            h.update(now)
        extra = f.readline()
        if extra:
            return f"the file has more writes than the database now gives (from {_brief(extra)})"
    if h.hexdigest() != saved.get("digest"):
        return "the file's lines do not match its own digest (edited or damaged)"
    return None


def _brief(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return (text[:160] + "…") if len(text) > 160 else (text or "nothing")


def refuse_unless_same(path: Path, header: dict[str, Any], lines: Iterable[dict[str, Any]], remake: str) -> None:
    """Raise WriteRefused (nothing written) naming the first difference, unless the file holds this plan."""
    diff = first_difference(path, header, lines)
    if diff is not None:
        raise WriteRefused(
            f"{show_path(path)}: the database no longer gives this plan ({diff}); nothing written; "
            f"make a new one with {remake}"
        )
