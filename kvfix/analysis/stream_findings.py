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
    """A finished stream's findings.

    ``n_legacy`` legacy group records, ``empty`` of them 16-byte (empty group names), at
    alias ids ``lo``..``hi``.
    """
    out: list[Finding] = []
    ns, key = rep.namespace, rep.key
    add = out.append
    legacy_groups = sorted({label(n) for (lay, n) in rep.groups if lay == LEGACY})
    prefixed_names = {n for (lay, n) in rep.groups if lay == PREFIXED}
    if rep.expired:
        add(finding("EXPIRED_STREAM", "stream metadata has expired; the server no longer sees this stream", ns, key))
    if n_legacy:
        add(
            finding(
                "LEGACY_LAYOUT",
                f"{counted(n_legacy, 'group record')} in the legacy layout (groups: {_names(legacy_groups)}); "
                "2.10+ answers NOGROUP for them: run kvfix migrate",
                ns,
                key,
                records=n_legacy,
            ),
        )
        msg = (
            f"{n_legacy} legacy records sit at alias ids {lo}..{hi}, inside XRANGE - + and XREAD 0: "
            f"{RELEASE_LABELS['2.10+']} and development builds before 2024-02-23 fail with "
            "'failed to decode stream entry value'"
        )
        if empty:
            msg += f"; {empty} of them (16-byte subkeys, empty group names) are misread by 2.8-2.9 too"
        add(
            finding(
                "SCAN_COLLISION",
                msg,
                ns,
                key,
                records=n_legacy,
                first_alias=str(lo),
                last_alias=str(hi),
                empty_names=empty,
            )
        )
    if rep.layout == "mixed":
        add(finding("MIXED_LAYOUT", "group records in both layouts in one stream", ns, key))
    for (lay, name), legacy_group in sorted(rep.groups.items()):
        if lay == LEGACY and name in prefixed_names:
            other = rep.groups[(PREFIXED, name)]
            add(
                finding(
                    "LAYOUT_CONFLICT",
                    f"group {label(name)} exists in both layouts: {_differences(legacy_group, other)}",
                    ns,
                    key,
                    group=show(name),
                )
            )
    for sub, readings in rep.ambiguous[:EXAMPLES]:
        add(
            finding(
                "AMBIGUOUS_RECORD",
                f"subkey {sub.hex()} fits {' and '.join(readings)}; read as {readings[0]}",
                ns,
                key,
                subkey_hex=sub.hex(),
                readings=list(readings),
            )
        )
    if len(rep.ambiguous) > EXAMPLES:
        add(finding("AMBIGUOUS_RECORD", f"and {len(rep.ambiguous) - EXAMPLES} more ambiguous records", ns, key))
    if rep.undecodable:
        sub, err = rep.undecodable[0]
        more = f" (and {len(rep.undecodable) - 1} more)" if len(rep.undecodable) > 1 else ""
        add(
            finding(
                "UNDECODABLE_RECORD",
                f"{len(rep.undecodable)} records decode as nothing known; first: subkey {sub.hex()}: {err}{more}",
                ns,
                key,
                records=len(rep.undecodable),
            )
        )
    if rep.max_ms_entries:
        ids = ", ".join(str(i) for i in rep.max_ms_entries[:EXAMPLES])
        add(
            finding(
                "MAX_MS_ENTRY",
                f"{len(rep.max_ms_entries)} entries at ms = 2^64-1 ({ids}): "
                "XLEN counts them, XRANGE on 2.10+ hides them",
                ns,
                key,
                entries=len(rep.max_ms_entries),
            )
        )
    if any(rep.records[k] for k in ("prefixed_group", "prefixed_consumer", "prefixed_pel")):
        add(
            finding(
                "ROLLBACK_HAZARD",
                "prefixed group records: a 2.8/2.9 server aborts (std::out_of_range) "
                "on XRANGE/XREAD of this stream; "
                "run kvfix migrate --to legacy before rolling back",
                ns,
                key,
            )
        )
    if rep.records["stale"]:
        add(
            finding(
                "STALE_RECORDS",
                f"{rep.records['stale']} records of dead versions of this key",
                ns,
                key,
                records=rep.records["stale"],
            )
        )

    return out


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
    if len(a.pel) != len(b.pel):
        diffs.append(f"pending entries legacy={len(a.pel)} prefixed={len(b.pel)}")
    return "; ".join(diffs) or "records identical"
