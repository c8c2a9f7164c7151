"""kvfix scan: read-only report of stream layouts, collisions and damage."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from kvfix.analysis.model import ScanReport
from kvfix.analysis.scan import scan_streams
from kvfix.analysis.scope import Scope
from kvfix.analysis.sharded import StreamSink
from kvfix.analysis.targets import Target, for_target
from kvfix.cli.options import (
    finding_report_options,
    handle_errors,
    live_option,
    read_error_findings,
    resolve_format,
    salvage_option,
    scope_options,
)
from kvfix.cli.target import target_option
from kvfix.errors import EXIT_FINDINGS, EXIT_OK
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.document import current_view
from kvfix.render.scan_report import ScanJsonWriter, ScanTables
from kvfix.store.opening import open_read_only
from kvfix.testpoints import reached


@click.command()
# readable=False: click's own check would print a multi-line usage error; storage reports it in one line.
@click.argument("path", type=click.Path(path_type=str, readable=False))
@finding_report_options
@click.option(
    "--deep", is_flag=True, help="Read and decode every entry too (default: only where group records can sit)."
)
@click.option(
    "--pel", "with_pel", is_flag=True, help="List every pending entry (PEL record) of every group (part of --records)."
)
@salvage_option
@live_option
@target_option
@scope_options
@handle_errors
def scan(
    path: str,
    fmt: str | None,
    fail_on: str,
    cluster: bool | None,
    deep: bool,
    with_pel: bool,
    salvage: bool,
    live: bool,
    target: Target,
    scope: Scope,
) -> int:
    """Decode every stream of a Kvrocks data directory (its dir or dir/db) under both layouts.

    Opens read-only; never changes a byte or a file name of PATH.  Prints a summary (totals,
    findings, streams and groups worst first, --limit rows each); --records adds every
    collision and PEL record, --pel the PEL records alone.
    """
    view, fmt = current_view(), resolve_format(fmt)
    keep = None if view.records or view.limit == 0 else view.limit
    options = dict(cluster=cluster, deep=deep, target=target, keep_findings=keep, scope=scope)
    options["keep_pel"] = with_pel or view.records
    opened = dict(salvage=salvage, live=live)
    if fmt == "json":
        writer = ScanJsonWriter(sys.stdout, with_pel, view.records, view.pretty)
        report = _scan(path, opened, options, writer, writer.begin)
        writer.finish(report)
    else:
        tables = ScanTables(deep, with_pel, view)
        report = _scan(path, opened, options, tables, None)
        render(tables.document(report), fmt)
    return EXIT_FINDINGS if report.digest().exceeds(fail_on) else EXIT_OK


def _scan(
    path: str,
    opened: dict[str, Any],
    options: dict[str, Any],
    sink: StreamSink,
    begin: Callable[[ScanReport], None] | None,
) -> ScanReport:
    """Open read-only and scan, each finished stream to ``sink`` (the report is streamed)."""
    with open_read_only(path, **opened) as db, progress_for("scanning") as progress:
        reached("scan")
        report = scan_streams(db, sink=sink, progress=progress, on_begin=begin, **options)
        report.findings.extend(for_target(read_error_findings(db), options["target"]))
    return report
