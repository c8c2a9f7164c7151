"""The findings of one live stream, from its finished StreamReport (pure; no I/O)."""

from __future__ import annotations

from kvfix.analysis.findings import Finding, finding
from kvfix.analysis.model import StreamReport
from kvfix.analysis.releases import RELEASE_LABELS
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import LEGACY, PREFIXED
from kvfix.textsafe import counted, label, show

#: Examples quoted in one finding message before "and N more".
EXAMPLES = 3


def stream_findings(rep: StreamReport, n_legacy: int, empty: int, lo: StreamId, hi: StreamId) -> list[Finding]:
    """A finished stream's findings, family by family in the order reports list them.

    ``n_legacy`` legacy group records, ``empty`` of them 16-byte (empty group names), at
    alias ids ``lo``..``hi``.
    """
    return [
        *_expired_findings(rep),
        *_legacy_record_findings(rep, n_legacy, empty, lo, hi),
        *_layout_mix_findings(rep),
        *_ambiguous_record_findings(rep),
        *_undecodable_record_findings(rep),
        *_max_ms_entry_findings(rep),
        *_rollback_hazard_findings(rep),
        *_stale_record_findings(rep),
    ]


def _expired_findings(rep: StreamReport) -> list[Finding]:
    """An expired stream is gone to the server, though its records are still on disk."""
    if not rep.expired:
        return []
    msg = "stream metadata has expired; the server no longer sees this stream"
    return [finding("EXPIRED_STREAM", msg, rep.namespace, rep.key)]


def _legacy_record_findings(rep: StreamReport, n_legacy: int, empty: int, lo: StreamId, hi: StreamId) -> list[Finding]:
    """Legacy group records: invisible to 2.10+ (NOGROUP), and in the way of its entry scans."""
    if not n_legacy:
        return []
    legacy_groups = sorted({label(n) for (lay, n) in rep.groups if lay == LEGACY})
    legacy = finding(
        "LEGACY_LAYOUT",
        f"{counted(n_legacy, 'group record')} in the legacy layout (groups: {_names(legacy_groups)}); "
        "2.10+ answers NOGROUP for them: run kvfix migrate",
        rep.namespace,
        rep.key,
        records=n_legacy,
    )
    return [legacy, _scan_collision_finding(rep, n_legacy, empty, lo, hi)]


def _scan_collision_finding(rep: StreamReport, n_legacy: int, empty: int, lo: StreamId, hi: StreamId) -> Finding:
    """Legacy records read as entries by XRANGE/XREAD: which releases fail, and how."""
    msg = (
        f"{counted(n_legacy, 'legacy record')} {'sits' if n_legacy == 1 else 'sit'} at alias ids {lo}..{hi}, "
        f"inside XRANGE - + and XREAD 0: {RELEASE_LABELS['2.10+']} and development builds before 2024-02-23 "
        "fail with 'failed to decode stream entry value'"
    )
    if empty:
        msg += f"; {empty} of them (16-byte subkeys, empty group names) are misread by 2.8-2.9 too"
    return finding(
        "SCAN_COLLISION",
        msg,
        rep.namespace,
        rep.key,
        records=n_legacy,
        first_alias=str(lo),
        last_alias=str(hi),
        empty_names=empty,
    )


def _layout_mix_findings(rep: StreamReport) -> list[Finding]:
    """Both layouts in one stream, and each group name that has records in both."""
    ns, key = rep.namespace, rep.key
    out: list[Finding] = []
    if rep.layout == "mixed":
        out.append(finding("MIXED_LAYOUT", "group records in both layouts in one stream", ns, key))
    prefixed_names = {n for (lay, n) in rep.groups if lay == PREFIXED}
    for (lay, name), legacy_group in sorted(rep.groups.items()):
        if lay == LEGACY and name in prefixed_names:
            diffs = _differences(legacy_group, rep.groups[(PREFIXED, name)])
            msg = f"group {label(name)} exists in both layouts: {diffs}"
            out.append(finding("LAYOUT_CONFLICT", msg, ns, key, group=show(name)))
    return out


def _ambiguous_record_findings(rep: StreamReport) -> list[Finding]:
    """Records two readings fit even with their value: the first few, then how many more."""
    ns, key = rep.namespace, rep.key
    out = [
        finding(
            "AMBIGUOUS_RECORD",
            f"subkey {sub.hex()} fits {' and '.join(readings)}; read as {readings[0]}",
            ns,
            key,
            subkey_hex=sub.hex(),
            readings=list(readings),
        )
        for sub, readings in rep.ambiguous[:EXAMPLES]
    ]
    if len(rep.ambiguous) > EXAMPLES:
        out.append(
            finding(
                "AMBIGUOUS_RECORD", f"and {counted(len(rep.ambiguous) - EXAMPLES, 'more ambiguous record')}", ns, key
            )
        )
    return out


def _undecodable_record_findings(rep: StreamReport) -> list[Finding]:
    """Records no reading fits: one finding, quoting the first."""
    if not rep.undecodable:
        return []
    n = len(rep.undecodable)
    sub, err = rep.undecodable[0]
    more = f" (and {n - 1} more)" if n > 1 else ""
    verb = "decodes" if n == 1 else "decode"
    msg = f"{counted(n, 'record')} {verb} as nothing known; first: subkey {sub.hex()}: {err}{more}"
    return [finding("UNDECODABLE_RECORD", msg, rep.namespace, rep.key, records=n)]


def _max_ms_entry_findings(rep: StreamReport) -> list[Finding]:
    """Entries at ms = 2^64-1 share the prefixed records' key range, so 2.10+ scans skip them."""
    if not rep.max_ms_entries:
        return []
    n = len(rep.max_ms_entries)
    ids = ", ".join(str(i) for i in rep.max_ms_entries[:EXAMPLES])
    msg = f"{counted(n, 'entry', 'entries')} at ms = 2^64-1 ({ids}): XLEN counts them, XRANGE on 2.10+ hides them"
    return [finding("MAX_MS_ENTRY", msg, rep.namespace, rep.key, entries=n)]


def _rollback_hazard_findings(rep: StreamReport) -> list[Finding]:
    """Prefixed group records crash a 2.8/2.9 server's entry scans, so a rollback needs a migration first."""
    if not any(rep.records[k] for k in ("prefixed_group", "prefixed_consumer", "prefixed_pel")):
        return []
    msg = (
        "prefixed group records: a 2.8/2.9 server aborts (std::out_of_range) "
        "on XRANGE/XREAD of this stream; "
        "run kvfix migrate --to legacy before rolling back"
    )
    return [finding("ROLLBACK_HAZARD", msg, rep.namespace, rep.key)]


def _stale_record_findings(rep: StreamReport) -> list[Finding]:
    """Records of dead versions of the key: harmless, gone at the next compaction."""
    stale = rep.records["stale"]
    if not stale:
        return []
    msg = f"{counted(stale, 'record')} of dead versions of this key"
    return [finding("STALE_RECORDS", msg, rep.namespace, rep.key, records=stale)]


def _names(names: list[str]) -> str:
    if len(names) <= EXAMPLES:
        return ", ".join(names)
    return ", ".join(names[:EXAMPLES]) + f" and {len(names) - EXAMPLES} more"


def _differences(a, b) -> str:
    """What differs between a group's legacy and prefixed records, for a conflict message."""
    diffs = []
    va, vb = a.value, b.value
    if va and vb:
        for field_name in ("last_delivered_id", "pending_number", "consumer_number", "entries_read", "lag"):
            x, y = getattr(va, field_name), getattr(vb, field_name)
            if x != y:
                diffs.append(f"{field_name} legacy={x} prefixed={y}")
    ca, cb = set(a.consumers), set(b.consumers)
    if ca != cb:
        diffs.append(
            f"consumers legacy={_names(sorted(label(c) for c in ca))} prefixed={_names(sorted(label(c) for c in cb))}"
        )
    if a.pel_count != b.pel_count:  # counts: a scan without --pel keeps no PEL record
        diffs.append(f"pending entries legacy={a.pel_count} prefixed={b.pel_count}")
    return "; ".join(diffs) or "records identical"
