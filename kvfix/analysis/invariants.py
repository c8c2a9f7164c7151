"""The invariants of one live stream: pure functions of its StreamReport and StreamFacts.

kvfix.analysis.check gathers the facts (a deep walk and point reads) and calls
:func:`invariant_findings`; kvfix.analysis.repair_plan turns its findings into writes.
Which groups are "live" for ``group_number``: see kvfix.analysis.check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding, Severity, finding
from kvfix.analysis.model import GroupInfo, StreamReport
from kvfix.codec.metadata import ZERO_ID, StreamId
from kvfix.textsafe import counted, show

#: Codes check adds to scan's, with severity and meaning (the README's check section lists them).
CHECK_CODES: dict[str, tuple[Severity, str]] = {
    "STREAM_SIZE_MISMATCH": ("error", "metadata size differs from the number of live entries"),
    "STREAM_FIRST_ID_MISMATCH": ("error", "metadata first_entry_id is not the smallest live entry id (0-0 when empty)"),
    "STREAM_LAST_ID_MISMATCH": ("error", "metadata last_entry_id is not the largest live entry id (0-0 when empty)"),
    "STREAM_ID_ORDER": (
        "error",
        "last_generated_id below last_entry_id, or max_deleted_entry_id above last_generated_id",
    ),
    "GROUP_COUNT_MISMATCH": ("error", "metadata group_number differs from the number of group records"),
    "GROUP_CONSUMER_COUNT_MISMATCH": ("error", "a group's consumer_number differs from its consumer records"),
    "GROUP_PENDING_MISMATCH": ("error", "a group's pending_number differs from its PEL records"),
    "GROUP_LAST_ID_AHEAD": ("error", "a group's last_delivered_id is above the stream's last_generated_id"),
    "GROUP_RECORD_MISSING": ("error", "consumer or PEL records of a group that has no group record"),
    "CONSUMER_PENDING_MISMATCH": ("error", "a consumer's pending_number differs from the PEL records it owns"),
    "PEL_OWNER_MISSING": ("error", "a PEL record names a consumer its group does not have"),
    "PEL_ENTRY_DELETED": ("info", "a PEL record whose entry was deleted (Redis keeps those too)"),
    "BAD_VALUE_LENGTH": ("error", "a record's value has the wrong length or shape for its kind"),
}

#: Codes --repair fixes (all by rewriting counters and ids, or adding a missing consumer).
REPAIRABLE = frozenset(
    {
        "STREAM_SIZE_MISMATCH",
        "STREAM_FIRST_ID_MISMATCH",
        "STREAM_LAST_ID_MISMATCH",
        "STREAM_ID_ORDER",
        "GROUP_COUNT_MISMATCH",
        "GROUP_CONSUMER_COUNT_MISMATCH",
        "GROUP_PENDING_MISMATCH",
        "GROUP_LAST_ID_AHEAD",
        "CONSUMER_PENDING_MISMATCH",
        "PEL_OWNER_MISSING",
    }
)

EXAMPLES = 3


@dataclass(frozen=True)
class BadValue:
    """A record whose key has a known shape but whose value does not fit it."""

    subkey: bytes
    kind: str  # RecordKind value
    length: int
    error: str


@dataclass
class StreamFacts:
    """What the deep walk learns about one stream beyond scan's StreamReport."""

    entries: int = 0
    first: StreamId | None = None
    last: StreamId | None = None
    bad_values: list[BadValue] = field(default_factory=list)
    #: (layout, group) -> consumers whose record exists but whose value does not decode.
    bad_consumers: dict[tuple[str, bytes], set[bytes]] = field(default_factory=dict)
    #: (layout, group) of group records whose value does not decode.
    bad_groups: set[tuple[str, bytes]] = field(default_factory=set)
    #: (layout, group) -> PEL entry ids whose entry record is absent (filled by point reads).
    deleted_pel_ids: dict[tuple[str, bytes], list[StreamId]] = field(default_factory=dict)

    def add_entries(self, count: int, first: StreamId, last: StreamId) -> None:
        self.entries += count
        if self.first is None or first < self.first:
            self.first = first
        if self.last is None or last > self.last:
            self.last = last


def check_finding(
    code: str, message: str, rep: StreamReport, expected: object, found: object, **details: object
) -> Finding:
    return finding(
        code,
        message,
        rep.namespace,
        rep.key,
        severity=CHECK_CODES[code][0],
        expected=_plain(expected),
        found=_plain(found),
        **{k: _plain(v) for k, v in details.items()},
    )


def _plain(v: object) -> object:
    if isinstance(v, StreamId):
        return str(v)
    if isinstance(v, bytes):
        return show(v)
    return v


def live_groups(rep: StreamReport) -> list[GroupInfo]:
    """Groups that have a decodable group record, in both layouts (see the module docstring)."""
    return [g for _, g in sorted(rep.groups.items()) if g.value is not None]


def group_record_count(rep: StreamReport, facts: StreamFacts) -> int:
    """Group records in both layouts, those with an undecodable value included."""
    return len({k for k, g in rep.groups.items() if g.value is not None} | facts.bad_groups)


def invariant_findings(rep: StreamReport, facts: StreamFacts) -> list[Finding]:
    """Every invariant of one live stream; pure (facts already hold the point-read results)."""
    if rep.expired or rep.metadata.stream is None:
        return []
    out: list[Finding] = []
    meta, tail = rep.metadata, rep.metadata.stream
    first = facts.first or ZERO_ID
    last = facts.last or ZERO_ID
    if meta.size != facts.entries:
        out.append(
            check_finding(
                "STREAM_SIZE_MISMATCH",
                f"metadata size is {meta.size}, the stream has {facts.entries} entries",
                rep,
                facts.entries,
                meta.size,
            )
        )
    if tail.first_entry_id != first:
        out.append(
            check_finding(
                "STREAM_FIRST_ID_MISMATCH",
                f"first_entry_id is {tail.first_entry_id}, the smallest entry is {first}",
                rep,
                first,
                tail.first_entry_id,
            )
        )
    if tail.last_entry_id != last:
        out.append(
            check_finding(
                "STREAM_LAST_ID_MISMATCH",
                f"last_entry_id is {tail.last_entry_id}, the largest entry is {last}",
                rep,
                last,
                tail.last_entry_id,
            )
        )
    lgid = tail.last_generated_id
    if lgid < last:
        msg = f"last_generated_id {lgid} is below the largest entry {last}: XADD * can generate ids that already exist"
        out.append(check_finding("STREAM_ID_ORDER", msg, rep, f">= {last}", lgid, field="last_generated_id"))
    if tail.max_deleted_entry_id > max(lgid, last):
        msg = f"max_deleted_entry_id {tail.max_deleted_entry_id} is above last_generated_id {lgid}"
        out.append(
            check_finding(
                "STREAM_ID_ORDER",
                msg,
                rep,
                f"<= {max(lgid, last)}",
                tail.max_deleted_entry_id,
                field="max_deleted_entry_id",
            )
        )
    n_groups = group_record_count(rep, facts)
    if (tail.group_number or 0) != n_groups:
        msg = f"group_number is {tail.group_number}, the stream has {counted(n_groups, 'group record')} (both layouts)"
        out.append(check_finding("GROUP_COUNT_MISMATCH", msg, rep, n_groups, tail.group_number))
    for (layout, name), g in sorted(rep.groups.items()):
        bad = facts.bad_consumers.get((layout, name), set())
        deleted = facts.deleted_pel_ids.get((layout, name), [])
        out.extend(_group_findings(rep, g, max(lgid, last), deleted, bad, (layout, name) in facts.bad_groups))
    out.extend(_bad_value_findings(rep, facts))
    return out


def _group_findings(
    rep: StreamReport, g: GroupInfo, lgid: StreamId, deleted: list[StreamId], bad_consumers: set[bytes], bad_group: bool
) -> list[Finding]:
    """One group's invariants; consumers whose value is bad still count as existing."""
    out: list[Finding] = []
    n_consumers = len(set(g.consumers) | bad_consumers)
    gname = show(g.name)
    gl = f"group {gname} ({g.layout})"
    where = {"group": g.name, "layout": g.layout}
    owned: dict[bytes, int] = {}
    for p in g.pel:
        owned[p.value.consumer] = owned.get(p.value.consumer, 0) + 1
    v = g.value
    if v is None and bad_group:
        pass  # BAD_VALUE_LENGTH reports it
    elif v is None:
        msg = f"{gl} has {len(g.consumers)} consumer and {len(g.pel)} PEL records but no group record"
        out.append(check_finding("GROUP_RECORD_MISSING", msg, rep, "a group record", "none", **where))
    else:
        if v.consumer_number != n_consumers:
            msg = f"{gl}: consumer_number is {v.consumer_number}, it has {n_consumers} consumer records"
            out.append(
                check_finding("GROUP_CONSUMER_COUNT_MISMATCH", msg, rep, n_consumers, v.consumer_number, **where)
            )
        if v.pending_number != len(g.pel):
            msg = f"{gl}: pending_number is {v.pending_number}, it has {len(g.pel)} PEL records"
            out.append(check_finding("GROUP_PENDING_MISMATCH", msg, rep, len(g.pel), v.pending_number, **where))
        if v.last_delivered_id > lgid:
            msg = f"{gl}: last_delivered_id {v.last_delivered_id} is above last_generated_id {lgid}"
            out.append(check_finding("GROUP_LAST_ID_AHEAD", msg, rep, f"<= {lgid}", v.last_delivered_id, **where))
    for cname, c in sorted(g.consumers.items()):
        mine = owned.get(cname, 0)
        if c.pending != mine:
            msg = f"consumer {show(cname)} of {gl}: pending_number is {c.pending}, it owns {mine} PEL records"
            out.append(check_finding("CONSUMER_PENDING_MISMATCH", msg, rep, mine, c.pending, consumer=cname, **where))
    for owner, n in sorted(owned.items()):
        if owner not in g.consumers and owner not in bad_consumers:
            msg = f"{n} PEL records of {gl} name consumer {show(owner)}, which the group does not have"
            out.append(
                check_finding(
                    "PEL_OWNER_MISSING", msg, rep, "an existing consumer", owner, consumer=owner, records=n, **where
                )
            )
    if deleted:
        ids = ", ".join(str(i) for i in deleted[:EXAMPLES]) + (
            f" and {len(deleted) - EXAMPLES} more" if len(deleted) > EXAMPLES else ""
        )
        msg = f"{len(deleted)} PEL records of {gl} point at deleted entries: {ids}"
        out.append(
            check_finding(
                "PEL_ENTRY_DELETED",
                msg,
                rep,
                "entry present",
                "deleted",
                records=len(deleted),
                ids=[str(i) for i in deleted[:EXAMPLES]],
                **where,
            )
        )
    return out


def _bad_value_findings(rep: StreamReport, facts: StreamFacts) -> list[Finding]:
    out = []
    for bad in facts.bad_values[:EXAMPLES]:
        msg = f"{bad.kind} record {bad.subkey.hex()}: value is {bad.length} bytes and does not decode ({bad.error})"
        out.append(
            check_finding(
                "BAD_VALUE_LENGTH",
                msg,
                rep,
                expected_shape(bad.kind),
                f"{bad.length} bytes",
                kind=bad.kind,
                subkey_hex=bad.subkey.hex(),
            )
        )
    if len(facts.bad_values) > EXAMPLES:
        n = len(facts.bad_values) - EXAMPLES
        out.append(
            check_finding(
                "BAD_VALUE_LENGTH", f"and {n} more records with bad values", rep, "valid values", f"{n} more", records=n
            )
        )
    return out


def expected_shape(kind: str) -> str:
    role = kind.rsplit("_", 1)[-1]
    return {
        "entry": "varint32-prefixed field/value pairs",
        "group": "48 bytes",
        "consumer": "24 bytes",
        "pel": "24 bytes + owner name",
    }[role]
