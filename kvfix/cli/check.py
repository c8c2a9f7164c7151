"""kvfix check: verify every stream's invariants (a CI gate); --repair rewrites wrong counters."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kvfix.analysis.check import check_streams
from kvfix.analysis.scope import Scope
from kvfix.analysis.targets import Target
from kvfix.cli.options import (
    finding_report_options,
    handle_errors,
    live_option,
    resolve_format,
    salvage_option,
    scope_options,
)
from kvfix.cli.repair import CheckInput, CheckOutput, WriteFlags, complete_reading, repair_dry_run, repair_run
from kvfix.cli.target import target_option
from kvfix.cli.writing import check_write_options, plan_file_options, write_options
from kvfix.errors import EXIT_FINDINGS, EXIT_OK
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.check_report import CheckOutputs
from kvfix.render.document import current_view
from kvfix.store.opening import open_read_only


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@finding_report_options
@click.option(
    "--summary-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Also append the report as Markdown to this file (e.g. "$GITHUB_STEP_SUMMARY").',
)
@click.option("--repair", is_flag=True, help="Recompute wrong counters and ids (never deletes entries or records).")
@click.option(
    "--verify-checksums",
    is_flag=True,
    help="Also read every record of every column family, so every block of every SST file is checksummed.",
)
@plan_file_options
@write_options
@salvage_option
@live_option
@target_option
@scope_options
@handle_errors
def check(
    path: str,
    fmt: str | None,
    fail_on: str,
    cluster: bool | None,
    summary_file: Path | None,
    repair: bool,
    yes: bool,
    dry_run: bool,
    backup_dir: Path | None,
    no_backup: bool,
    verify_checksums: bool,
    save_plan: Path | None,
    plan_file: Path | None,
    salvage: bool,
    live: bool,
    target: Target,
    scope: Scope,
) -> int:
    """Verify the invariants of every stream of a Kvrocks data directory (its dir or dir/db).

    Reads every record.  Without --repair it opens read-only and never changes a byte.
    With --repair (holding the LOCK, after a confirmation or --yes, and a backup of the
    original files) it rewrites wrong metadata, group and consumer counters and ids, one
    atomic batch per stream, then checks again.  Exit codes as scan: 0 clean, 1 findings
    at or above --fail-on, 2 could not run (or the repair did not verify).

    \b
    Examples:
      kvfix check /var/lib/kvrocks --verify-checksums
      kvfix check /var/lib/kvrocks --live --format json > report.json
      kvfix check /var/lib/kvrocks --repair --dry-run --save-plan repair.jsonl
      kvfix check /var/lib/kvrocks --repair --plan repair.jsonl
    """
    read = CheckInput(path, cluster, target, verify_checksums, salvage, live, scope)
    out = CheckOutput(fmt, fail_on, summary_file)
    writes = WriteFlags(yes, backup_dir, no_backup)
    _validate_options(read, writes, repair, dry_run, save_plan, plan_file)
    if not repair:
        return _check_only(read, out)
    if dry_run:
        return repair_dry_run(read, out, save_plan)
    return repair_run(read, out, writes, plan_file)


def _validate_options(
    read: CheckInput, writes: WriteFlags, repair: bool, dry_run: bool, save_plan: Path | None, plan_file: Path | None
) -> None:
    """The usage errors, in the order they are checked."""
    if not repair and (writes.yes or dry_run or writes.backup_dir is not None or writes.no_backup):
        raise click.UsageError("--yes, --dry-run, --backup-dir and --no-backup go with --repair")
    if repair and read.live:
        raise click.UsageError("--repair never runs on a live server's directory: stop the server first")
    if repair and read.salvage:
        raise click.UsageError("--salvage does not go with --repair: a repair is planned only from a complete read")
    if repair and not read.scope.everything:
        raise click.UsageError("--namespace, --stream and --match do not go with --repair: it covers every stream")
    check_write_options(writes.backup_dir, writes.no_backup)
    if (save_plan is not None and not (repair and dry_run)) or (plan_file is not None and not repair):
        raise click.UsageError("--save-plan goes with --repair --dry-run, --plan with --repair")
    if plan_file is not None and dry_run:
        raise click.UsageError("--plan applies a saved plan; it does not go with --dry-run")


def _check_only(read: CheckInput, out: CheckOutput) -> int:
    """Check without --repair, streamed: each stream goes to the report as it is checked."""
    view, fmt = current_view(), resolve_format(out.fmt)
    keep = None if view.records or view.limit == 0 else view.limit
    outputs = CheckOutputs(view, fmt, out.summary_file is not None, sys.stdout)
    tables, writer = outputs.tables, outputs.writer
    with open_read_only(read.path, salvage=read.salvage, live=read.live) as db, progress_for("checking") as progress:
        report = check_streams(
            db,
            sink=outputs,
            cluster=read.cluster,
            progress=progress,
            target=read.target,
            keep_findings=keep,
            scope=read.scope,
            on_begin=outputs.begin,
        )
        complete_reading(db, report, read.verify_checksums)
    if tables is not None and out.summary_file is not None:
        out.append_summary(tables.document(report))
    if writer is not None:
        writer.finish(report)
    elif tables is not None:
        render(tables.document(report), fmt)
    return EXIT_FINDINGS if report.digest().exceeds(out.fail_on) else EXIT_OK
