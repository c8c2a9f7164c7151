"""``kvfix check --repair``: plan (read-only, under the LOCK), show, confirm, run, report.

The command itself (options, validation, check without --repair) is kvfix/cli/check.py; the
writes go through migrate's executor (kvfix/migrations/run.py) with a RepairJob.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.check import CheckReport, check_database, read_every_record
from kvfix.analysis.repair_job import RepairJob, all_repair_plans, repair_plans
from kvfix.analysis.repair_plan import StreamRepair
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.targets import Target
from kvfix.cli.options import emit, findings_exit, read_error_findings, resolve_format
from kvfix.cli.writing import backup_location, confirm_or_refuse, raise_for_run, remove_leftover_config, restore_hint
from kvfix.errors import Interrupted, KvfixError, ReadError, RunInterrupted, WriteRefused
from kvfix.migrations import planfile
from kvfix.migrations.run import RunResult, execute
from kvfix.progress import progress_for
from kvfix.render import Document, render
from kvfix.render.check_report import check_document, check_json, repair_document, repair_json
from kvfix.signals import NAMES
from kvfix.store.database import Database
from kvfix.store.files import Fingerprint, fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.textsafe import show_path


@dataclass(frozen=True)
class CheckInput:
    """What check reads, and how (PATH and the options that change the reading)."""

    path: str
    cluster: bool | None
    target: Target
    verify_checksums: bool
    salvage: bool
    live: bool
    scope: Scope = EVERYTHING


@dataclass(frozen=True)
class CheckOutput:
    """Where and how check's report goes: --format, --fail-on (the exit code), --summary-file."""

    fmt: str | None
    fail_on: str
    summary_file: Path | None

    def append_summary(self, doc: Document) -> None:
        """The report as Markdown, appended to --summary-file."""
        assert self.summary_file is not None
        buf = io.StringIO()
        render(doc, "markdown", buf)
        with open(self.summary_file, "a", encoding="utf-8") as fh:
            fh.write(buf.getvalue())

    def finish(self, doc: Document, obj: Any, report: CheckReport) -> int:
        """Print the report (after the summary file: a closed pipe must not lose the CI summary); the exit code."""
        if self.summary_file is not None:
            self.append_summary(doc)
        emit(self.fmt, lambda: doc, lambda: obj)
        return findings_exit(report.all_findings(), self.fail_on)


@dataclass(frozen=True)
class WriteFlags:
    """--yes, --backup-dir, --no-backup."""

    yes: bool
    backup_dir: Path | None
    no_backup: bool


@dataclass(frozen=True)
class Held:
    """A real repair's database: resolved, its LOCK held, its files as planned from."""

    data: DataDir
    lock: HeldLock
    planned_files: Fingerprint


def complete_reading(db: Database, report: CheckReport, verify_checksums: bool) -> None:
    """What every reading check adds at its end: --verify-checksums' pass, then what could not be read."""
    if verify_checksums:
        report.verified_records = read_every_record(db)
    report.scan.findings.extend(read_error_findings(db))


def repair_dry_run(read: CheckInput, out: CheckOutput, save_plan: Path | None) -> int:
    """``--repair --dry-run``: plan read-only (no LOCK), show the plan, perhaps save it; writes nothing."""
    with open_read_only(read.path, salvage=read.salvage, live=read.live) as db, progress_for("checking") as progress:
        report = check_database(db, cluster=read.cluster, progress=progress, target=read.target)
        complete_reading(db, report, read.verify_checksums)
        identity = db.state()[0]
    if save_plan is not None:
        plans = repair_plans(report)
        header, info = _plan_header(read.cluster, identity, resolve(read.path), len(plans))
        planfile.save(save_plan, header, info, planfile.repair_lines(plans))
        click.echo(f"kvfix: plan saved to {show_path(save_plan)}; apply it with --repair --plan", err=True)
    return _show_plan(out, report, dry_run=True)


def repair_run(read: CheckInput, out: CheckOutput, writes: WriteFlags, plan_file: Path | None) -> int:
    """A real ``--repair``: holding the LOCK from planning to the report."""
    data = resolve(read.path)
    with HeldLock(data.db) as lock:
        held = Held(data, lock, fingerprint(data.db))
        report, identity = _plan(held, read.cluster)
        plans = repair_plans(report)
        if plan_file is not None:
            header, _ = _plan_header(read.cluster, identity, data, len(plans))
            remake = "--repair --dry-run --save-plan"
            planfile.refuse_unless_same(plan_file, header, planfile.repair_lines(plans), remake)
        if not plans:
            remove_leftover_config(data)
            if read.verify_checksums:
                report.verified_records = _read_every_record(held)
            return _show_plan(out, report, dry_run=False)
        backup_to = _confirm(data, plans, out.fmt, writes)
        result, after = _run(held, report, plans, read.cluster, backup_to)
        if read.verify_checksums:
            after.verified_records = _read_every_record_after(held, result)
        return _report(data, plans, result, after, out)


def _plan(held: Held, cluster: bool | None) -> tuple[CheckReport, str]:
    """The check a real repair is planned from (a read-only open under the LOCK), and the database's identity."""
    with open_read_only(held.data, lock=held.lock) as db, progress_for("checking") as progress:
        if "stream" not in db.column_families:
            raise WriteRefused(
                f"{held.data.shown()} has no stream column family: nothing to repair from; nothing written"
            )
        report = check_database(db, cluster=cluster, progress=progress)
        return report, db.state()[0]


def _show_plan(out: CheckOutput, report: CheckReport, dry_run: bool) -> int:
    """The report with the repair plan: a dry run's, or a real run's that has nothing to write."""
    plans = all_repair_plans(report)
    doc = check_document(report)
    repair_document(doc, plans, "Repair plan (dry run: nothing written)" if dry_run else "Repair plan: nothing to do")
    info = {"dry_run": dry_run, "planned": repair_json(plans), "written_streams": 0, "backup": None}
    return out.finish(doc, check_json(report, info), report)


def _confirm(data: DataDir, plans: list[StreamRepair], fmt: str | None, writes: WriteFlags) -> Path | None:
    """Where the backup goes (checked first), the plan shown (not in JSON), then the confirmation."""
    backup_to = backup_location(data, writes.backup_dir, writes.no_backup)
    if resolve_format(fmt) != "json":
        doc = Document(f"kvfix check --repair {data.shown()}")
        repair_document(doc, plans, "Repair plan")
        render(doc, resolve_format(fmt))
    count = sum(len(p.puts) for p in plans)
    confirm_or_refuse(f"Rewrite {count} values in {len(plans)} streams of {data.shown()}?", writes.yes)
    return backup_to


def _run(
    held: Held, report: CheckReport, plans: list[StreamRepair], cluster: bool | None, backup_to: Path | None
) -> tuple[RunResult, CheckReport]:
    """Back up, write and verify through the executor migrate uses; (the result, the check taken after)."""
    data = held.data
    job = RepairJob(plans, cluster)
    result = execute(
        data,
        held.lock,
        job,
        planned_files=held.planned_files,
        backup_to=backup_to,
        on_backup=lambda saved: click.echo(f"kvfix: {restore_hint(data, saved)}", err=True),
    )
    raise_for_run(result)
    return result, job.after if job.after is not None else report


def _read_every_record(held: Held) -> dict[str, int]:
    """--verify-checksums on a read-only open while the LOCK is still held."""
    with open_read_only(held.data, lock=held.lock) as db:
        return read_every_record(db)


def _read_every_record_after(held: Held, result: RunResult) -> dict[str, int]:
    """--verify-checksums after a verified repair; a failure says that the repair itself went through."""
    done = f"{result.applied.done} of {result.applied.total} streams written and verified"
    where = f"; the backup is at {show_path(result.backup)}" if result.backup else ""
    try:
        return _read_every_record(held)
    except Interrupted as exc:
        signal = NAMES.get(exc.signum, "a signal")
        raise RunInterrupted(
            f"interrupted by {signal}: {done}; the --verify-checksums read did not finish: "
            f"run kvfix check {show_path(held.data.db)} --verify-checksums",
            exc.signum,
        ) from exc
    except KvfixError as exc:
        raise ReadError(f"{done}, but --verify-checksums failed: {exc.message}{where}") from exc


def _report(data: DataDir, plans: list[StreamRepair], result: RunResult, after: CheckReport, out: CheckOutput) -> int:
    """The check taken after the repair, with what was written."""
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
    return out.finish(doc, check_json(after, info), after)


def _plan_header(cluster: bool | None, identity: str, data: DataDir, streams: int) -> tuple[dict, dict]:
    header = {"command": "check --repair", "options": {"cluster": cluster}, "db_identity": identity}
    return header, {"db_path": data.shown(), "streams": streams}
