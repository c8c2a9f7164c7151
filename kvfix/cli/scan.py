"""kvfix scan: read-only report of stream layouts, collisions and damage."""

from __future__ import annotations

import sys

import click

from kvfix.analysis.model import ScanReport
from kvfix.analysis.scan import scan_streams
from kvfix.analysis.scope import Scope
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
    view = current_view()
    fmt = resolve_format(fmt)
    records = view.records
    keep = None if records or view.limit == 0 else view.limit
    if fmt == "json":
        writer = ScanJsonWriter(sys.stdout, with_pel, records, view.pretty)
        begin, add = writer.begin, writer.add
    else:
        tables = ScanTables(deep, with_pel, view)
        begin, add = _nothing, tables.add
    with open_read_only(path, salvage=salvage, live=live) as db, progress_for("scanning") as progress:
        reached("scan")
        report = scan_streams(
            db,
            lambda a: add(a.report),
            cluster=cluster,
            deep=deep,
            progress=progress,
            target=target,
            on_begin=begin,
            keep_findings=keep,
            keep_pel=with_pel or records,
            scope=scope,
        )
        report.findings.extend(for_target(read_error_findings(db), target))
    if fmt == "json":
        writer.finish(report)
    else:
        render(tables.document(report), fmt)
    return EXIT_FINDINGS if report.digest().exceeds(fail_on) else EXIT_OK


def _nothing(report: ScanReport) -> None:
    return None
