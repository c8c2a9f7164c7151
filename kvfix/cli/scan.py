"""kvfix scan: read-only report of stream layouts, collisions and damage."""

from __future__ import annotations

import click

from kvfix.analysis.scan import scan_database
from kvfix.analysis.targets import Target, retarget
from kvfix.cli.options import (
    finding_report_options,
    findings_exit,
    handle_errors,
    live_option,
    read_error_findings,
    resolve_format,
    salvage_option,
)
from kvfix.cli.target import target_option
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.jsonout import dump
from kvfix.render.scan_report import scan_document, scan_json
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
) -> int:
    """Decode every stream of a Kvrocks data directory (its dir or dir/db) under both layouts.

    Opens read-only; never changes a byte or a file name of PATH.  Prints a summary (totals,
    findings, streams and groups worst first, --limit rows each); --records adds every
    collision and PEL record, --pel the PEL records alone.
    """
    with open_read_only(path, salvage=salvage, live=live) as db, progress_for("scanning") as progress:
        reached("scan")
        report = scan_database(db, cluster=cluster, deep=deep, progress=progress)
        report.findings.extend(read_error_findings(db))
        retarget(report, target)
    if resolve_format(fmt) == "json":
        dump(scan_json(report, with_pel, lazy=True))  # streams are written one by one
    else:
        render(scan_document(report, with_pel), resolve_format(fmt))
    return findings_exit(report.all_findings(), fail_on)
