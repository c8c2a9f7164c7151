"""Findings: what kvfix reports, with a severity that decides the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

#: Every code scan can emit, its severity, and what it means (README lists this table).
SCAN_CODES: dict[str, tuple[Severity, str]] = {
    "LEGACY_LAYOUT": ("warning", "group records in the legacy layout: 2.10+ cannot see these groups (NOGROUP)"),
    "SCAN_COLLISION": ("error", "legacy group records sit inside entry scans (XRANGE/XREAD fail or return garbage)"),
    "MIXED_LAYOUT": ("error", "one stream holds group records in both layouts"),
    "LAYOUT_CONFLICT": ("error", "a group name exists in both layouts"),
    "AMBIGUOUS_RECORD": ("warning", "a stream record fits two readings even with its value"),
    "UNDECODABLE_RECORD": ("error", "a record whose key or value decodes as no known record"),
    "MAX_MS_ENTRY": (
        "warning",
        "entry at ms = 2^64-1: hidden from XRANGE on 2.10+, shares the prefixed records' range",
    ),
    "ORPHAN_RECORD": ("warning", "stream records of a key that has no stream metadata"),
    "STALE_RECORDS": ("info", "records of a dead key version, waiting for compaction"),
    "EXPIRED_STREAM": ("info", "the stream's metadata has expired; the server treats it as gone"),
    "ROLLBACK_HAZARD": ("info", "prefixed group records: a 2.8/2.9 server aborts on an entry scan of this stream"),
    "UNKNOWN_TYPE": ("warning", "metadata of a type this kvfix does not know"),
    "UNDECODABLE_METADATA": ("error", "a metadata record that does not decode"),
    "CLUSTER_MODE_MISMATCH": ("error", "the --cluster/--no-cluster override disagrees with the data"),
    "NEWER_ROCKSDB": ("info", "the database was written by a newer RocksDB than kvfix's own (no writes then)"),
    "LIVE_VIEW": ("info", "read from a running server's directory (--live): the view as of one instant"),
    "READ_ERROR": ("error", "RocksDB could not read part of the database (--salvage): the report is partial"),
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    namespace: bytes | None = None
    key: bytes | None = None
    details: dict[str, Any] = field(default_factory=dict)


def finding(
    code: str, message: str, namespace: bytes | None = None, key: bytes | None = None, **details: Any
) -> Finding:
    severity = SCAN_CODES[code][0] if code in SCAN_CODES else details.pop("severity", "error")
    return Finding(severity, code, message, namespace, key, details)


def worst(findings: list[Finding]) -> int:
    """Highest severity rank present, -1 when there is none."""
    return max((SEVERITY_RANK[f.severity] for f in findings), default=-1)


def exceeds(findings: list[Finding], fail_on: str) -> bool:
    return worst(findings) >= SEVERITY_RANK[fail_on]


#: Findings of one code kept as examples by a digest (the summary names the first streams).
EXAMPLES = 4


@dataclass
class CodeTally:
    """One code's findings in a digest: how many, the worst severity, the first few."""

    count: int = 0
    severity: Severity = "info"
    examples: list[Finding] = field(default_factory=list)


class FindingsDigest:
    """Findings counted by code and severity, keeping only the first ``keep`` (None: all).

    A report over a million streams has a million findings; summaries, exit codes and
    next steps need only the counts, each code's worst severity and a few examples.
    """

    def __init__(self, keep: int | None = None) -> None:
        self.keep = keep
        self.total = 0
        self.severities: dict[str, int] = {"error": 0, "warning": 0, "info": 0}
        self.codes: dict[str, CodeTally] = {}
        #: The first ``keep`` findings, in the order they came.
        self.first: list[Finding] = []

    def add(self, f: Finding) -> None:
        self.total += 1
        self.severities[f.severity] += 1
        tally = self.codes.get(f.code)
        if tally is None:
            tally = self.codes[f.code] = CodeTally(severity=f.severity)
        tally.count += 1
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[tally.severity]:
            tally.severity = f.severity
        if len(tally.examples) < EXAMPLES:
            tally.examples.append(f)
        if self.keep is None or len(self.first) < self.keep:
            self.first.append(f)

    def extend(self, findings: list[Finding]) -> FindingsDigest:
        for f in findings:
            self.add(f)
        return self

    @property
    def complete(self) -> bool:
        """Every finding is in ``first``."""
        return len(self.first) == self.total

    def worst(self) -> int:
        return max((SEVERITY_RANK[s] for s, n in self.severities.items() if n), default=-1)

    def exceeds(self, fail_on: str) -> bool:
        return self.worst() >= SEVERITY_RANK[fail_on]

    def merged(self, other: FindingsDigest) -> FindingsDigest:
        """A new digest of this one's findings then ``other``'s (counts exact, examples as kept)."""
        out = FindingsDigest(self.keep)
        for d in (self, other):
            out.total += d.total
            for s, n in d.severities.items():
                out.severities[s] += n
            for code, t in d.codes.items():
                mine = out.codes.setdefault(code, CodeTally(severity=t.severity))
                mine.count += t.count
                if SEVERITY_RANK[t.severity] > SEVERITY_RANK[mine.severity]:
                    mine.severity = t.severity
                mine.examples.extend(t.examples[: max(EXAMPLES - len(mine.examples), 0)])
            room = None if out.keep is None else max(out.keep - len(out.first), 0)
            out.first.extend(d.first if room is None else d.first[:room])
        return out
