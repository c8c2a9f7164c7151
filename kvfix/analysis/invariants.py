"""The invariants of one live stream: pure functions of its StreamReport and StreamFacts.

kvfix.analysis.check gathers the facts (a deep walk and point reads) and calls
:func:`invariant_findings`; kvfix.analysis.repair_plan turns its findings into writes.
Which groups are "live" for ``group_number``: see kvfix.analysis.check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding, Severity, finding
from kvfix.analysis.model import GroupInfo, StreamReport
from kvfix.codec.metadata import ZERO_ID, StreamId, StreamTail
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


def group_record_count(rep: StreamReport, facts: StreamFacts) -> int:
    """Group records in both layouts, those with an undecodable value included."""
    return len({k for k, g in rep.groups.items() if g.value is not None} | facts.bad_groups)


def invariant_findings(rep: StreamReport, facts: StreamFacts) -> list[Finding]:
    """Every invariant of one live stream; pure (facts already hold the point-read results)."""
    tail = rep.metadata.stream
    if rep.expired or tail is None:
        return []
    return [
        *_entry_summary_findings(rep, tail, facts),
        *_id_order_findings(rep, tail, facts),
        *_group_count_findings(rep, tail, facts),
        *_all_group_findings(rep, tail, facts),
        *_bad_value_findings(rep, facts),
    ]


def _id_ceiling(tail: StreamTail, facts: StreamFacts) -> StreamId:
    """The highest id the stream has handed out: last_generated_id, or the largest entry if that is above it."""
    return max(tail.last_generated_id, facts.last or ZERO_ID)


def _entry_summary_findings(rep: StreamReport, tail: StreamTail, facts: StreamFacts) -> list[Finding]:
    """Metadata's size, first and last entry id against the entries the walk found (XLEN, XINFO)."""
    out: list[Finding] = []
    size = rep.metadata.size
    first, last = facts.first or ZERO_ID, facts.last or ZERO_ID
    if size != facts.entries:
        msg = f"metadata size is {size}, the stream has {counted(facts.entries, 'entry', 'entries')}"
        out.append(check_finding("STREAM_SIZE_MISMATCH", msg, rep, facts.entries, size))
    if tail.first_entry_id != first:
        msg = f"first_entry_id is {tail.first_entry_id}, the smallest entry is {first}"
        out.append(check_finding("STREAM_FIRST_ID_MISMATCH", msg, rep, first, tail.first_entry_id))
    if tail.last_entry_id != last:
        msg = f"last_entry_id is {tail.last_entry_id}, the largest entry is {last}"
        out.append(check_finding("STREAM_LAST_ID_MISMATCH", msg, rep, last, tail.last_entry_id))
    return out


def _id_order_findings(rep: StreamReport, tail: StreamTail, facts: StreamFacts) -> list[Finding]:
    """last_generated_id must not fall below an entry (XADD * would reuse ids), nor a deleted id rise above it."""
    out: list[Finding] = []
    lgid, last = tail.last_generated_id, facts.last or ZERO_ID
    if lgid < last:
        msg = f"last_generated_id {lgid} is below the largest entry {last}: XADD * can generate ids that already exist"
        out.append(check_finding("STREAM_ID_ORDER", msg, rep, f">= {last}", lgid, field="last_generated_id"))
    ceiling = _id_ceiling(tail, facts)
    if tail.max_deleted_entry_id > ceiling:
        msg = f"max_deleted_entry_id {tail.max_deleted_entry_id} is above last_generated_id {lgid}"
        out.append(
            check_finding(
                "STREAM_ID_ORDER", msg, rep, f"<= {ceiling}", tail.max_deleted_entry_id, field="max_deleted_entry_id"
            )
        )
    return out


def _group_count_findings(rep: StreamReport, tail: StreamTail, facts: StreamFacts) -> list[Finding]:
    """Metadata's group_number against the group records of both layouts (XINFO STREAM's groups)."""
    n_groups = group_record_count(rep, facts)
    if (tail.group_number or 0) == n_groups:
        return []
    msg = f"group_number is {tail.group_number}, the stream has {counted(n_groups, 'group record')} (both layouts)"
    return [check_finding("GROUP_COUNT_MISMATCH", msg, rep, n_groups, tail.group_number)]


def _all_group_findings(rep: StreamReport, tail: StreamTail, facts: StreamFacts) -> list[Finding]:
    """Each group's invariants, groups in (layout, name) order."""
    ceiling = _id_ceiling(tail, facts)
    out: list[Finding] = []
    for (layout, name), g in sorted(rep.groups.items()):
        bad = facts.bad_consumers.get((layout, name), set())
        deleted = facts.deleted_pel_ids.get((layout, name), [])
        out.extend(_group_findings(rep, g, ceiling, deleted, bad, (layout, name) in facts.bad_groups))
    return out


def _group_findings(
    rep: StreamReport, g: GroupInfo, lgid: StreamId, deleted: list[StreamId], bad_consumers: set[bytes], bad_group: bool
) -> list[Finding]:
    """One group's invariants; consumers whose value is bad still count as existing."""
    n_consumers = len(set(g.consumers) | bad_consumers)
    owned = _pel_owners(g)
    return [
        *_group_record_findings(rep, g, lgid, n_consumers, bad_group),
        *_consumer_pending_findings(rep, g, owned),
        *_pel_owner_findings(rep, g, owned, bad_consumers),
        *_deleted_pel_entry_findings(rep, g, deleted),
    ]


def _group_label(g: GroupInfo) -> str:
    """How messages name a group: a name can exist in both layouts, so the layout is part of it."""
    return f"group {show(g.name)} ({g.layout})"


def _group_where(g: GroupInfo) -> dict[str, object]:
    """The details that say which group a finding is about."""
    return {"group": g.name, "layout": g.layout}


def _pel_owners(g: GroupInfo) -> dict[bytes, int]:
    """Consumer name -> how many of the group's PEL records name it as owner."""
    return g.pel_owners()


def _group_record_findings(
    rep: StreamReport, g: GroupInfo, lgid: StreamId, n_consumers: int, bad_group: bool
) -> list[Finding]:
    """The group record itself: missing, or its counters and last_delivered_id against its records."""
    gl, where, v = _group_label(g), _group_where(g), g.value
    if v is None:
        if bad_group:
            return []  # BAD_VALUE_LENGTH reports it
        msg = f"{gl} has {len(g.consumers)} consumer and {g.pel_count} PEL records but no group record"
        return [check_finding("GROUP_RECORD_MISSING", msg, rep, "a group record", "none", **where)]
    out: list[Finding] = []
    if v.consumer_number != n_consumers:
        msg = f"{gl}: consumer_number is {v.consumer_number}, it has {counted(n_consumers, 'consumer record')}"
        out.append(check_finding("GROUP_CONSUMER_COUNT_MISMATCH", msg, rep, n_consumers, v.consumer_number, **where))
    if v.pending_number != g.pel_count:
        msg = f"{gl}: pending_number is {v.pending_number}, it has {g.pel_count} PEL records"
        out.append(check_finding("GROUP_PENDING_MISMATCH", msg, rep, g.pel_count, v.pending_number, **where))
    if v.last_delivered_id > lgid:
        msg = f"{gl}: last_delivered_id {v.last_delivered_id} is above last_generated_id {lgid}"
        out.append(check_finding("GROUP_LAST_ID_AHEAD", msg, rep, f"<= {lgid}", v.last_delivered_id, **where))
    return out


def _consumer_pending_findings(rep: StreamReport, g: GroupInfo, owned: dict[bytes, int]) -> list[Finding]:
    """Each consumer's pending_number against the PEL records that name it (XPENDING's per-consumer counts)."""
    gl, where = _group_label(g), _group_where(g)
    out: list[Finding] = []
    for cname, c in sorted(g.consumers.items()):
        mine = owned.get(cname, 0)
        if c.pending != mine:
            msg = f"consumer {show(cname)} of {gl}: pending_number is {c.pending}, it owns {mine} PEL records"
            out.append(check_finding("CONSUMER_PENDING_MISMATCH", msg, rep, mine, c.pending, consumer=cname, **where))
    return out


def _pel_owner_findings(
    rep: StreamReport, g: GroupInfo, owned: dict[bytes, int], bad_consumers: set[bytes]
) -> list[Finding]:
    """PEL records whose owner has no consumer record (one with an undecodable value still counts)."""
    gl, where = _group_label(g), _group_where(g)
    out: list[Finding] = []
    for owner, n in sorted(owned.items()):
        if owner not in g.consumers and owner not in bad_consumers:
            msg = f"{n} PEL records of {gl} name consumer {show(owner)}, which the group does not have"
            out.append(
                check_finding(
                    "PEL_OWNER_MISSING", msg, rep, "an existing consumer", owner, consumer=owner, records=n, **where
                )
            )
    return out


def _deleted_pel_entry_findings(rep: StreamReport, g: GroupInfo, deleted: list[StreamId]) -> list[Finding]:
    """PEL records whose entry is gone: only info, since Redis keeps those too."""
    if not deleted:
        return []
    shown = [str(i) for i in deleted[:EXAMPLES]]
    ids = ", ".join(shown) + (f" and {len(deleted) - EXAMPLES} more" if len(deleted) > EXAMPLES else "")
    msg = f"{len(deleted)} PEL records of {_group_label(g)} point at deleted entries: {ids}"
    return [
        check_finding(
            "PEL_ENTRY_DELETED",
            msg,
            rep,
            "entry present",
            "deleted",
            records=len(deleted),
            ids=shown,
            **_group_where(g),
        )
    ]


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
