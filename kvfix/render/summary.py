"""Summary tables sized for people: worst first, capped by ``--limit``, findings grouped by code.

A report over a million streams must fit a screen or two: every summary table picks its
first ``limit`` rows in worst-first order without sorting everything (:func:`top`) and
closes with a line saying how many were left out and how to see them (:func:`more_line`).
"""

from __future__ import annotations

import heapq
import shlex
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kvfix.analysis.findings import SCAN_CODES, SEVERITY_RANK, Finding, FindingsDigest
from kvfix.analysis.invariants import CHECK_CODES
from kvfix.render.document import Document, View
from kvfix.textsafe import show

T = TypeVar("T")

#: Streams named in one row of the findings-by-code table.
FIRST_STREAMS = 3


def top(items: Iterable[T], key: Callable[[T], Any], view: View) -> list[T]:
    """The first ``view.limit`` items in ``key`` order (all of them with limit 0): O(n log limit)."""
    if view.limit == 0:
        return sorted(items, key=key)
    return heapq.nsmallest(view.limit, items, key=key)


def more_line(total: int, shown: int, noun: str) -> str | None:
    """The closing line of a capped table, None when nothing was left out."""
    left = total - shown
    if left <= 0:
        return None
    return f"… and {left:,} more {noun}: --limit 0 for all, or --format json"


def counted(title: str, shown: int, total: int) -> str:
    return f"{title} ({total:,})" if shown >= total else f"{title} ({shown:,} of {total:,})"


def capped_table(
    doc: Document,
    title: str,
    headers: list[str],
    rows: list[list[object]],
    total: int,
    noun: str,
) -> None:
    """A table of the first rows of ``total``, titled with both counts and closed by :func:`more_line`."""
    doc.table(counted(title, len(rows), total), headers, rows, more_line(total, len(rows), noun))


def where(f: Finding) -> str:
    if f.key is None:
        return "-"
    return f"{show(f.namespace or b'')}/{show(f.key)}"


def severity_key(f: Finding) -> int:
    return -SEVERITY_RANK[f.severity]


def worst_rank(findings: Iterable[Finding]) -> int:
    """The highest severity rank among ``findings``; -1 when there is none."""
    return max((SEVERITY_RANK[f.severity] for f in findings), default=-1)


def findings_cell(findings: list[Finding]) -> str:
    """A stream's findings in one cell: how many, and the worst severity."""
    if not findings:
        return "-"
    return f"{len(findings)} ({min(findings, key=severity_key).severity})"


def meaning(code: str) -> str | None:
    known = SCAN_CODES.get(code) or CHECK_CODES.get(code)
    return None if known is None else known[1]


def findings_table(doc: Document, findings: list[Finding]) -> None:
    """Every finding, one row each, in report order (stats' table; scan and check use findings_summary)."""
    rows: list[list[object]] = [[f.severity, f.code, where(f), f.message] for f in findings]
    doc.table(f"Findings ({len(findings)})", ["severity", "code", "stream", "message"], rows)


def findings_summary(doc: Document, findings: list[Finding] | FindingsDigest, view: View) -> None:
    """Findings worst first: one row each when they fit the limit (or with --records), else one row per code."""
    digest = findings if isinstance(findings, FindingsDigest) else FindingsDigest().extend(findings)
    if digest.complete and (view.records or view.fits(digest.total)):
        each: list[list[object]] = [
            [f.severity, f.code, where(f), f.message] for f in sorted(digest.first, key=severity_key)
        ]
        doc.table(f"Findings ({digest.total:,})", ["severity", "code", "stream", "message"], each)
        return
    codes = digest.codes
    order = top(codes, lambda c: (-SEVERITY_RANK[codes[c].severity], -codes[c].count, c), view)
    rows: list[list[object]] = []
    for code in order:
        tally = codes[code]
        first = tally.examples
        names = ", ".join(where(f) for f in first[:FIRST_STREAMS])
        if tally.count > FIRST_STREAMS:
            names += f", … +{tally.count - FIRST_STREAMS:,}"
        text = first[0].message if tally.count == 1 else meaning(code) or first[0].message
        rows.append([tally.severity, code, f"{tally.count:,}", names, text])
    doc.table(
        f"Findings ({digest.total:,}) by code, worst first (one row each: --records, or --format json)",
        ["severity", "code", "count", "streams", "meaning"],
        rows,
        more_line(len(codes), len(rows), "codes"),
    )


def next_steps(
    doc: Document, findings: list[Finding] | FindingsDigest, path: str, repairable: frozenset[str] = frozenset()
) -> None:
    """The command to run next, said at the end of a report, after a blank line (none: nothing to do)."""
    digest = findings if isinstance(findings, FindingsDigest) else FindingsDigest().extend(findings)
    codes = set(digest.codes)
    shown = shlex.quote(path)
    steps = []
    if "READ_ERROR" in codes:
        steps.append("next: the report is partial (READ_ERROR): restore the damaged files from a backup")
    if "LAYOUT_CONFLICT" in codes:
        steps.append(f"next: kvfix migrate {shown} --dry-run --on-conflict keep-prefixed (or keep-legacy)")
    elif codes & {"LEGACY_LAYOUT", "SCAN_COLLISION", "MIXED_LAYOUT"}:
        steps.append(f"next: kvfix migrate {shown} --dry-run --save-plan plan.jsonl")
    if "ROLLBACK_HAZARD" in codes and digest.codes["ROLLBACK_HAZARD"].severity == "error":
        steps.append(f"next: kvfix migrate {shown} --to legacy --dry-run")
    if codes & repairable:
        steps.append(f"repairable: kvfix check {shown} --repair --dry-run")
    for i, step in enumerate(steps):
        if i == 0:
            doc.line("")
        doc.line(step)
