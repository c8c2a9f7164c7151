"""What a scan learns about a database: plain dataclasses, rendered by kvfix.render."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from kvfix.analysis.findings import Finding
from kvfix.codec.metadata import Metadata, StreamId
from kvfix.codec.stream import ConsumerValue, GroupValue, Layout, PelValue, RecordKind

RECORD_COUNT_KEYS = (*(k.value for k in RecordKind), "stale", "unknown")


@dataclass(slots=True)
class ConsumerInfo:
    name: bytes
    value: ConsumerValue

    @property
    def pending(self) -> int:
        return self.value.pending_number


@dataclass(slots=True)
class PelInfo:
    entry_id: StreamId
    value: PelValue


@dataclass
class GroupInfo:
    name: bytes
    layout: Layout
    value: GroupValue | None  # None: consumers or PEL records with no group record
    consumers: dict[bytes, ConsumerInfo] = field(default_factory=dict)
    pel: list[PelInfo] = field(default_factory=list)

    @property
    def pending(self) -> int | None:
        return None if self.value is None else self.value.pending_number


class Collision(NamedTuple):
    """A legacy record that entry scans meet (one per record; a tuple, as scans make thousands)."""

    kind: RecordKind
    group: bytes
    alias_id: StreamId
    subkey: bytes
    scans: tuple[str, ...]
    releases: tuple[str, ...]


@dataclass
class StreamReport:
    namespace: bytes
    key: bytes
    slot: int | None
    version: int
    metadata: Metadata
    expired: bool = False
    records: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[Layout, bytes], GroupInfo] = field(default_factory=dict)
    collisions: list[Collision] = field(default_factory=list)
    max_ms_entries: list[StreamId] = field(default_factory=list)
    ambiguous: list[tuple[bytes, tuple[str, ...]]] = field(default_factory=list)
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def layout(self) -> str:
        legacy = any(self.records[k] for k in ("legacy_group", "legacy_consumer", "legacy_pel"))
        prefixed = any(self.records[k] for k in ("prefixed_group", "prefixed_consumer", "prefixed_pel"))
        if legacy and prefixed:
            return "mixed"
        return "legacy" if legacy else "prefixed" if prefixed else "none"

    def group(self, layout: Layout, name: bytes) -> GroupInfo:
        info = self.groups.get((layout, name))
        if info is None:
            info = self.groups[(layout, name)] = GroupInfo(name, layout, None)
        return info


@dataclass
class GarbageCount:
    """Records of a key incarnation that is not a live stream (stale version or orphan)."""

    records: int = 0
    bytes: int = 0


@dataclass
class ScanReport:
    path: str
    column_families: tuple[str, ...]
    cluster_slots: bool
    namespaces: list[bytes]
    deep: bool
    streams: list[StreamReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    stale: GarbageCount = field(default_factory=GarbageCount)
    orphans: GarbageCount = field(default_factory=GarbageCount)

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for s in self.streams:
            out.extend(s.findings)
        return out

    def summary(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        layouts: Counter[str] = Counter()
        for s in self.streams:
            totals.update(s.records)
            layouts[s.layout] += 1
        findings = self.all_findings()
        out = {
            "streams": len(self.streams),
            **{f"layout_{k}": layouts[k] for k in ("none", "legacy", "prefixed", "mixed")},
            "groups": sum(len(s.groups) for s in self.streams),
            "collisions": sum(len(s.collisions) for s in self.streams),
            **{f"records_{k}": totals[k] for k in RECORD_COUNT_KEYS},
            "stale_records": self.stale.records,
            "orphan_records": self.orphans.records,
            "errors": sum(f.severity == "error" for f in findings),
            "warnings": sum(f.severity == "warning" for f in findings),
            "infos": sum(f.severity == "info" for f in findings),
        }
        return out
