"""kvfix check: verify every stream's invariants (a CI gate); --repair rewrites wrong counters."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.check import CheckReport, check_database
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.repair_plan import StreamRepair, plan_stream_repair
from kvfix.cli.options import (
    emit,
    finding_report_options,
    findings_exit,
    handle_errors,
    resolve_format,
)
from kvfix.errors import VerifyFailed, WriteRefused
from kvfix.progress import progress_for
from kvfix.render import Document, render
from kvfix.render.check_report import check_document, check_json, repair_document, repair_json
from kvfix.storage import open_read_only, open_read_write
from kvfix.writes import WriteOp, apply_units, backup, confirm_or_refuse, file_names, foreign_files, write_options


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
@write_options
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
) -> int:
    """Verify the invariants of every stream of a Kvrocks data directory (its dir or dir/db).

    Reads every record.  Without --repair it opens read-only and never changes a byte.
    With --repair (after a lock check, a confirmation or --yes, and a checkpoint backup)
    it rewrites wrong metadata, group and consumer counters and ids, one atomic batch per
    stream, then checks again.  Exit codes as scan: 0 clean, 1 findings at or above
    --fail-on, 2 could not run (or the repair did not verify).
    """
    if not repair and (yes or dry_run or backup_dir is not None or no_backup):
        raise click.UsageError("--yes, --dry-run, --backup-dir and --no-backup go with --repair")
    with open_read_only(path) as db, progress_for("checking") as progress:
        report = check_database(db, cluster=cluster, progress=progress)
    if not repair:
        return _finish(fmt, summary_file, check_document(report), check_json(report), report, fail_on)

    plans = _plans(report)
    if dry_run or not any(p.puts for p in plans):
        doc = check_document(report)
        repair_document(
            doc, plans, "Repair plan (dry run: nothing written)" if dry_run else "Repair plan: nothing to do"
        )
        info = {"dry_run": dry_run, "planned": repair_json(plans), "written_streams": 0, "backup": None}
        return _finish(fmt, summary_file, doc, check_json(report, info), report, fail_on)
    if resolve_format(fmt) != "json":
        doc = Document(f"kvfix check --repair {report.scan.path}")
        repair_document(doc, plans, "Repair plan")
        render(doc, resolve_format(fmt))
    writes = sum(len(p.puts) for p in plans)
    streams = sum(bool(p.puts) for p in plans)
    confirm_or_refuse(f"Rewrite {writes} values in {streams} streams of {report.scan.path}?", yes)
    return _repair(path, plans, fmt, fail_on, cluster, summary_file, backup_dir, no_backup)


def _plans(report: CheckReport) -> list[StreamRepair]:
    return [plan_stream_repair(sc) for sc in report.streams]


def _repair(
    path: str,
    confirmed: list[StreamRepair],
    fmt: str | None,
    fail_on: str,
    cluster: bool | None,
    summary_file: Path | None,
    backup_dir: Path | None,
    no_backup: bool,
) -> int:
    """Open read-write (lock check), re-plan, refuse if the plan changed, back up, write, verify."""
    with open_read_write(path) as db:
        before_names = file_names(db.path)
        with progress_for("checking") as progress:
            report = check_database(db, cluster=cluster, progress=progress)
        plans = [p for p in _plans(report) if p.puts]
        if [p.puts for p in plans] != [p.puts for p in confirmed if p.puts]:
            raise WriteRefused("the database changed since the plan was shown; nothing was written; run again")
        planned = repair_json(plans)
        saved = backup(db, backup_dir, no_backup)
        applied = apply_units(db, [[WriteOp(w.cf, w.key, w.value) for w in p.puts] for p in plans])
        db.flush_all()
        after = check_database(db, cluster=cluster)
        db_path = db.path
    left = [f for f in after.invariant_findings() if f.code in REPAIRABLE]
    foreign = foreign_files(db_path, before_names)
    if not applied.complete:
        raise VerifyFailed(
            f"interrupted after {applied.done} of {applied.total} streams; each stream is whole; run again"
        )
    if left or foreign:
        problem = f"{len(left)} repairable findings remain ({left[0].message})" if left else f"stray files {foreign}"
        raise VerifyFailed(f"repair written but not verified: {problem}" + (f"; backup at {saved}" if saved else ""))
    doc = check_document(after)
    repair_document(doc, plans, f"Repaired ({applied.done} streams)")
    if saved is not None:
        doc.line(f"backup (RocksDB checkpoint) at {saved}")
    info: dict[str, Any] = {
        "dry_run": False,
        "planned": planned,
        "written_streams": applied.done,
        "backup": None if saved is None else str(saved),
    }
    return _finish(fmt, summary_file, doc, check_json(after, info), after, fail_on)


def _finish(
    fmt: str | None, summary_file: Path | None, doc: Document, obj: Any, report: CheckReport, fail_on: str
) -> int:
    if summary_file is not None:  # before stdout: a closed pipe must not lose the CI summary
        buf = io.StringIO()
        render(doc, "markdown", buf)
        with open(summary_file, "a", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
    emit(fmt, lambda: doc, lambda: obj)
    return findings_exit(report.all_findings(), fail_on)
