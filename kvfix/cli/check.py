"""kvfix check: verify every stream's invariants (a CI gate); --repair rewrites wrong counters."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.check import CheckReport, StreamCheck, check_database, check_streams, read_every_record
from kvfix.analysis.repair_job import RepairJob, all_repair_plans, repair_plans
from kvfix.analysis.targets import Target
from kvfix.cli.options import (
    emit,
    finding_report_options,
    findings_exit,
    handle_errors,
    live_option,
    read_error_findings,
    resolve_format,
    salvage_option,
)
from kvfix.cli.target import target_option
from kvfix.cli.writing import (
    backup_location,
    check_write_options,
    confirm_or_refuse,
    plan_file_options,
    raise_for_run,
    remove_leftover_config,
    restore_hint,
    write_options,
)
from kvfix.errors import EXIT_FINDINGS, EXIT_OK, WriteRefused
from kvfix.migrations import planfile
from kvfix.migrations.run import execute
from kvfix.progress import progress_for
from kvfix.render import Document, render
from kvfix.render.check_report import (
    CheckJsonWriter,
    CheckTables,
    check_document,
    check_json,
    repair_document,
    repair_json,
)
from kvfix.render.document import current_view
from kvfix.store.files import fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.textsafe import show_path


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
    if not repair and (yes or dry_run or backup_dir is not None or no_backup):
        raise click.UsageError("--yes, --dry-run, --backup-dir and --no-backup go with --repair")
    if repair and live:
        raise click.UsageError("--repair never runs on a live server's directory: stop the server first")
    if repair and salvage:
        raise click.UsageError("--salvage does not go with --repair: a repair is planned only from a complete read")
    check_write_options(backup_dir, no_backup)
    if (save_plan is not None and not (repair and dry_run)) or (plan_file is not None and not repair):
        raise click.UsageError("--save-plan goes with --repair --dry-run, --plan with --repair")
    if plan_file is not None and dry_run:
        raise click.UsageError("--plan applies a saved plan; it does not go with --dry-run")
    if not repair:
        return _check_only(path, fmt, summary_file, fail_on, cluster, salvage, live, target, verify_checksums)
    if dry_run:
        with open_read_only(path, salvage=salvage, live=live) as db, progress_for("checking") as progress:
            report = check_database(db, cluster=cluster, progress=progress, target=target)
            if verify_checksums:
                report.verified_records = read_every_record(db)
            report.scan.findings.extend(read_error_findings(db))
            identity = db.state()[0]
        if save_plan is not None:
            plans = repair_plans(report)
            header, info = _plan_header(cluster, identity, resolve(path), len(plans))
            planfile.save(save_plan, header, info, planfile.repair_lines(plans), planfile.repair_lines(plans))
            click.echo(f"kvfix: plan saved to {show_path(save_plan)}; apply it with --repair --plan", err=True)
        return _show_plan(fmt, summary_file, report, fail_on, dry_run=True)
    data = resolve(path)
    with HeldLock(data.db) as lock:
        planned_files = fingerprint(data.db)
        with open_read_only(data, lock=lock) as db, progress_for("checking") as progress:
            if "stream" not in db.column_families:
                raise WriteRefused(
                    f"{data.shown()} has no stream column family: nothing to repair from; nothing written"
                )
            report = check_database(db, cluster=cluster, progress=progress)
            identity = db.state()[0]
        plans = repair_plans(report)
        if plan_file is not None:
            header, _ = _plan_header(cluster, identity, data, len(plans))
            remake = "--repair --dry-run --save-plan"
            planfile.refuse_unless_same(plan_file, header, planfile.repair_lines(plans), remake)
        if not plans:
            remove_leftover_config(data)
            return _show_plan(fmt, summary_file, report, fail_on, dry_run=False)
        return _repair(
            data, lock, planned_files, report, plans, fmt, fail_on, cluster, summary_file, backup_dir, no_backup, yes
        )


def _check_only(
    path: str,
    fmt: str | None,
    summary_file: Path | None,
    fail_on: str,
    cluster: bool | None,
    salvage: bool,
    live: bool,
    target: Target,
    verify_checksums: bool,
) -> int:
    """Check without --repair, streamed: each stream goes to the report as it is checked."""
    view, fmt = current_view(), resolve_format(fmt)
    keep = None if view.records or view.limit == 0 else view.limit
    tables = CheckTables(view) if fmt != "json" or summary_file is not None else None
    writer = CheckJsonWriter(sys.stdout, view.records, view.pretty) if fmt == "json" else None

    def on_check(sc: StreamCheck) -> None:
        if tables is not None:
            tables.add(sc)
        if writer is not None:
            writer.add(sc)

    with open_read_only(path, salvage=salvage, live=live) as db, progress_for("checking") as progress:
        report = check_streams(
            db,
            on_check,
            cluster=cluster,
            progress=progress,
            target=target,
            keep_findings=keep,
            on_begin=None if writer is None else writer.begin,
        )
        if verify_checksums:
            report.verified_records = read_every_record(db)
        report.scan.findings.extend(read_error_findings(db))
    if tables is not None and summary_file is not None:
        _summary_file(summary_file, tables.document(report))
    if writer is not None:
        writer.finish(report)
    elif tables is not None:
        render(tables.document(report), fmt)
    return EXIT_FINDINGS if report.digest().exceeds(fail_on) else EXIT_OK


def _summary_file(summary_file: Path, doc: Document) -> None:
    buf = io.StringIO()
    render(doc, "markdown", buf)
    with open(summary_file, "a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())


def _show_plan(fmt: str | None, summary_file: Path | None, report: CheckReport, fail_on: str, dry_run: bool) -> int:
    plans = all_repair_plans(report)
    doc = check_document(report)
    repair_document(doc, plans, "Repair plan (dry run: nothing written)" if dry_run else "Repair plan: nothing to do")
    info = {"dry_run": dry_run, "planned": repair_json(plans), "written_streams": 0, "backup": None}
    return _finish(fmt, summary_file, doc, check_json(report, info), report, fail_on)


def _repair(
    data: DataDir,
    lock: HeldLock,
    planned_files: dict[str, tuple[int, int]],
    report: CheckReport,
    plans: list,
    fmt: str | None,
    fail_on: str,
    cluster: bool | None,
    summary_file: Path | None,
    backup_dir: Path | None,
    no_backup: bool,
    yes: bool,
) -> int:
    """Confirm, then back up, write and verify through the executor migrate uses."""
    target = backup_location(data, backup_dir, no_backup)
    if resolve_format(fmt) != "json":
        doc = Document(f"kvfix check --repair {data.shown()}")
        repair_document(doc, plans, "Repair plan")
        render(doc, resolve_format(fmt))
    writes = sum(len(p.puts) for p in plans)
    confirm_or_refuse(f"Rewrite {writes} values in {len(plans)} streams of {data.shown()}?", yes)
    job = RepairJob(plans, cluster)
    result = execute(
        data,
        lock,
        job,
        planned_files=planned_files,
        backup_to=target,
        on_backup=lambda saved: click.echo(f"kvfix: {restore_hint(data, saved)}", err=True),
    )
    raise_for_run(result)
    after = job.after if job.after is not None else report
    doc = check_document(after)
    repair_document(doc, plans, f"Repaired ({result.applied.done} streams); verified")
    if result.backup is not None:
        doc.line(restore_hint(data, result.backup))
    info: dict[str, Any] = {
        "dry_run": False,
        "planned": repair_json(plans),
        "written_streams": result.applied.done,
        "verified": result.verified,
        "backup": None if result.backup is None else show_path(result.backup),
    }
    return _finish(fmt, summary_file, doc, check_json(after, info), after, fail_on)


def _finish(
    fmt: str | None, summary_file: Path | None, doc: Document, obj: Any, report: CheckReport, fail_on: str
) -> int:
    if summary_file is not None:  # before stdout: a closed pipe must not lose the CI summary
        _summary_file(summary_file, doc)
    emit(fmt, lambda: doc, lambda: obj)
    return findings_exit(report.all_findings(), fail_on)


def _plan_header(cluster: bool | None, identity: str, data: DataDir, streams: int) -> tuple[dict, dict]:
    header = {"command": "check --repair", "options": {"cluster": cluster}, "db_identity": identity}
    return header, {"db_path": data.shown(), "streams": streams}
