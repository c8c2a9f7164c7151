"""inspect's report as JSON (schema 2, documented in the README) and as a Document.

Integers JSON readers that use doubles (jq, JavaScript) keep: ``metadata.version`` and a list's
``head``/``tail`` and item ``index`` (about 2^61 and 2^63) are always decimal strings; every
other integer read from the data is a number up to 2^53-1 and a decimal string beyond
(:func:`~kvfix.render.jsonout.safe_int`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from kvfix.analysis.inspect import InspectReport, iso_ms, iso_us
from kvfix.analysis.inspect_records import Record
from kvfix.codec.hash_ttl import HashFieldExpiryTail
from kvfix.codec.timeseries import CHUNK_TYPES, DUPLICATE_POLICIES, enum_name
from kvfix.codec.types import TimeSeriesTail
from kvfix.render.document import Document
from kvfix.render.jsonout import safe_int, text_and_hex
from kvfix.textsafe import show

SCHEMA = 2


def _num(x: float) -> Any:
    """JSON has no inf/nan: those become strings ("inf", "-inf", "nan")."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _jsonable(value: Any) -> Any:
    """Bytes become shown text, integers :func:`safe_int`; containers recurse (``value``, tails, records)."""
    if isinstance(value, bytes):
        return show(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return safe_int(value)
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {(show(k) if isinstance(k, bytes) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _data_json(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "fragment":
            out["fragment_hex"] = v.hex()
        elif isinstance(v, bytes):
            out.update(text_and_hex(k, v))
        elif k == "fields":
            out[k] = [show(x) for x in v]
            out["fields_hex"] = [x.hex() for x in v]
        else:
            out[k] = _jsonable(v)
    return out


def record_json(rec: Record, raw: bool) -> dict[str, Any]:
    out = {"cf": rec.cf, "kind": rec.kind, **_data_json(rec.data)}
    if rec.kind == "item":  # a list index sits around 2^63: always a string, like the list's head and tail
        out["index"] = str(rec.data["index"])
    if raw:
        out["raw_key_hex"] = rec.raw_key.hex()
        out["raw_value_hex"] = rec.raw_value.hex()
    return out


def _tail_json(rep: InspectReport) -> dict[str, Any] | None:
    if rep.tail is None:
        return None
    out = {k: _jsonable(v) for k, v in dataclasses.asdict(rep.tail).items()}
    if "payload" in out:
        out["payload_hex"] = rep.tail.payload.hex()  # type: ignore[union-attr]
    if "source_key" in out:
        out["source_key_hex"] = rep.tail.source_key.hex()  # type: ignore[union-attr]
    if isinstance(rep.tail, HashFieldExpiryTail):
        out["lower_at"] = iso_ms(rep.tail.lower) if rep.tail.lower else None
        out["upper_at"] = iso_ms(rep.tail.upper) if rep.tail.upper else None
    if isinstance(rep.tail, TimeSeriesTail):
        out["chunk_type_name"] = enum_name(CHUNK_TYPES, rep.tail.chunk_type)
        out["duplicate_policy_name"] = enum_name(DUPLICATE_POLICIES, rep.tail.duplicate_policy)
    return out


def metadata_json(rep: InspectReport) -> dict[str, Any] | None:
    m = rep.metadata
    if m is None:
        return None
    return {
        "type": m.type_name,
        "type_id": m.type_id,
        "encoding": "64bit" if m.is_64bit else "32bit",
        "flags_extra": m.extra_flags,
        "expire_ms": safe_int(m.expire_ms or None),
        "expire_at": iso_ms(m.expire_ms) if m.expire_ms else None,
        "pttl": safe_int(rep.pttl),
        "version": None if m.version is None else str(m.version),
        "created_at": None if m.creation_us is None else iso_us(m.creation_us),
        "size": safe_int(m.size),
        "list": None if m.list is None else {"head": str(m.list.head), "tail": str(m.list.tail)},
        "stream": None
        if m.stream is None
        else {
            "last_generated_id": str(m.stream.last_generated_id),
            "recorded_first_entry_id": str(m.stream.recorded_first_entry_id),
            "max_deleted_entry_id": str(m.stream.max_deleted_entry_id),
            "first_entry_id": str(m.stream.first_entry_id),
            "last_entry_id": str(m.stream.last_entry_id),
            "entries_added": safe_int(m.stream.entries_added),
            "group_number": safe_int(m.stream.group_number),
        },
        "tail": _tail_json(rep),
        "tail_error": rep.tail_error,
        "undecoded_tail_hex": m.tail.hex() if (rep.tail is None and m.type_id != 1 and m.tail) else None,
    }


def inspect_json(rep: InspectReport, raw: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "db": {"path": rep.path, "cluster_slots": rep.cluster},
        **text_and_hex("namespace", rep.namespace),
        **text_and_hex("key", rep.key),
        "slot": rep.slot,
        "state": rep.state,
        "metadata": metadata_json(rep),
        "metadata_error": rep.metadata_error,
        "value": _jsonable(rep.value),
        "counts": {cf: dataclasses.asdict(c) for cf, c in sorted(rep.counts.items())},
        "limit": rep.limit,
        "truncated": rep.truncated,
        "records": [record_json(r, raw) for r in rep.records],
        "notes": rep.notes,
        "problems": rep.problems,
    }
    if raw:
        out["raw_metadata_key_hex"] = rep.raw_metadata_key.hex()
        out["raw_metadata_hex"] = rep.raw_metadata.hex()
    return out


def _cell(v: Any) -> str:
    if isinstance(v, bytes):
        return show(v)
    if isinstance(v, list):
        return " ".join(_cell(x) for x in v)
    return str(_num(v)) if isinstance(v, float) else str(v)


def inspect_document(rep: InspectReport, raw: bool = False) -> Document:
    doc = Document(f"kvfix inspect {show(rep.namespace)}/{show(rep.key)}")
    m = rep.metadata
    rows: list[list[object]] = [
        ["namespace", show(rep.namespace)],
        ["key", show(rep.key)],
        ["key (hex)", rep.key.hex()],
    ]
    if rep.slot is not None:
        rows.append(["slot", rep.slot])
    rows.append(["state", rep.state])
    if m is not None:
        meta = metadata_json(rep) or {}
        rows += [
            ["type", f"{m.type_name} ({m.type_id})" if m.known_type else m.type_name],
            ["encoding", meta["encoding"] + (f", extra flags 0x{m.extra_flags:02x}" if m.extra_flags else "")],
            ["expire", f"{meta['expire_at']} ({m.expire_ms} ms)" if m.expire_ms else "none"],
            ["pttl", rep.pttl],
        ]
        if m.version is not None:
            rows += [["version", m.version], ["created", meta["created_at"]], ["size", m.size]]
        for name in ("list", "stream", "tail"):
            if meta.get(name):
                rows += [[f"{name}.{k}", _cell(v)] for k, v in meta[name].items() if not k.endswith("_hex")]
        if meta.get("undecoded_tail_hex"):
            rows.append(["undecoded tail (hex)", meta["undecoded_tail_hex"]])
    if raw:
        rows += [["metadata key (hex)", rep.raw_metadata_key.hex()], ["metadata value (hex)", rep.raw_metadata.hex()]]
    doc.table("Metadata", ["field", "value"], rows)
    if m is not None and m.type_id == 1:
        doc.line(f"value: {show(rep.value or b'')}")
    elif m is not None and m.type_id == 10 and rep.value is not None:
        doc.line(f"JSON: {json.dumps(rep.value, ensure_ascii=True)[:2000]}")
    counts = [[cf, c.live, c.shown, c.dead_version, c.undecoded, c.bytes] for cf, c in sorted(rep.counts.items())]
    doc.table("Records", ["column family", "live", "shown", "dead-version", "undecoded", "bytes"], counts)
    kinds: dict[str, list[Record]] = {}
    for r in rep.records:
        kinds.setdefault(f"{r.cf}: {r.kind}", []).append(r)
    for title, recs in kinds.items():
        headers = [k for k in recs[0].data if k != "fragment"]
        table_rows = [[_cell(r.data.get(h)) for h in headers] for r in recs]
        if raw:
            headers = [*headers, "raw key (hex)", "raw value (hex)"]
            for row, r in zip(table_rows, recs, strict=True):
                row += [r.raw_key.hex(), r.raw_value.hex()]
        doc.table(title, headers, table_rows)  # type: ignore[arg-type]
    for n in rep.notes:
        doc.line(f"note: {n}")
    for p in rep.problems:
        doc.line(f"problem: {p}")
    return doc
