"""``kvfix check --repair``: plan (read-only, under the LOCK), show, confirm, run, report.

The command itself (options, validation, check without --repair) is kvfix/cli/check.py; the
writes go through migrate's executor (kvfix/migrations/run.py) with a RepairJob.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.check import CheckReport, StreamCheck, check_streams, read_every_record
from kvfix.analysis.repair_job import PlanDigest, RepairJob, RepairSpool, RepairSummary
from kvfix.analysis.repair_plan import StreamRepair, plan_stream_repair
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.targets import Target
from kvfix.cli.options import read_error_findings, resolve_format
from kvfix.cli.writing import backup_location, confirm_or_refuse, raise_for_run, remove_leftover_config, restore_hint
from kvfix.errors import EXIT_FINDINGS, EXIT_OK, Interrupted, KvfixError, ReadError, RunInterrupted, WriteRefused
from kvfix.migrations import planfile
from kvfix.migrations.run import RunResult, execute
from kvfix.progress import Progress, progress_for
from kvfix.render import Document, render
from kvfix.render.check_report import CheckOutputs, repair_document, repair_json_item, repair_summary
from kvfix.render.document import current_view
from kvfix.render.jsonout import Lazy
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


class Planned:
    """A streamed check with its repair plan: the report's renderers (JSON into a spool), the
    plan spooled for the writes, summed up for people and digested."""

    def __init__(self, out: CheckOutput) -> None:
        self.view, self.fmt = current_view(), resolve_format(out.fmt)
        self.json = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8")  # noqa: SIM115
        self.outputs = CheckOutputs(self.view, self.fmt, out.summary_file is not None, self.json)
        self.spool = RepairSpool()
        self.summary = repair_summary(self.view)
        self.digest = PlanDigest()
        self.keep = None if self.view.records or self.view.limit == 0 else self.view.limit
        self.lines: list[Callable[[StreamRepair], None]] = []

    def on_check(self, sc: StreamCheck) -> None:
        self.outputs.add(sc)
        p = plan_stream_repair(sc)
        self.spool.add(p)
        self.summary.add(p)
        if p.puts:
            self.digest.add(p)
            for add in self.lines:
                add(p)

    def check(self, db: Database, cluster: bool | None, target: Target, progress: Progress) -> CheckReport:
        return check_streams(
            db,
            self.on_check,
            cluster=cluster,
            progress=progress,
            target=target,
            keep_findings=self.keep,
            on_begin=self.outputs.begin,
        )

    def close(self) -> None:
        self.spool.close()
        self.json.close()


def repair_dry_run(read: CheckInput, out: CheckOutput, save_plan: Path | None) -> int:
    """``--repair --dry-run``: plan read-only (no LOCK), show the plan, perhaps save it; writes nothing."""
    planned = Planned(out)
    writer = None if save_plan is None else planfile.PlanFileWriter(save_plan)
    if writer is not None:
        planned.lines.append(lambda p: writer.add(planfile.repair_lines([p])))
    try:
        with open_read_only(read.path, salvage=read.salvage, live=read.live) as db, progress_for("checking") as pr:
            report = planned.check(db, read.cluster, read.target, pr)
            complete_reading(db, report, read.verify_checksums)
            identity = db.state()[0]
        if writer is not None:
            header, info = _plan_header(read.cluster, identity, resolve(read.path), planned.summary.streams)
            writer.finish(header, info)
            click.echo(f"kvfix: plan saved to {show_path(writer.path)}; apply it with --repair --plan", err=True)
        return _show_plan(out, planned, report, dry_run=True)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        planned.close()


def repair_run(read: CheckInput, out: CheckOutput, writes: WriteFlags, plan_file: Path | None) -> int:
    """A real ``--repair``: holding the LOCK from planning to the report."""
    data = resolve(read.path)
    with HeldLock(data.db) as lock:
        held = Held(data, lock, fingerprint(data.db))
        planned = Planned(out)
        try:
            report, state = _plan(held, read.cluster, planned, plan_file)
            if not planned.summary.streams:
                remove_leftover_config(data)
                if read.verify_checksums:
                    report.verified_records = _read_every_record(held)
                return _show_plan(out, planned, report, dry_run=False)
            backup_to = _confirm(data, planned.summary, out.fmt, writes)
            after = Planned(out)
            try:
                result, after_report = _run(held, planned, after, state, read.cluster, backup_to)
                if read.verify_checksums:
                    after_report.verified_records = _read_every_record_after(held, result)
                return _report(data, planned, after, result, after_report, out)
            finally:
                after.close()
        finally:
            planned.close()


def _plan(
    held: Held, cluster: bool | None, planned: Planned, plan_file: Path | None
) -> tuple[CheckReport, tuple[str, int]]:
    """The check a real repair is planned from (a read-only open under the LOCK), compared
    with ``plan_file`` line by line when given; (the check, the database's state token)."""
    compare = None
    with open_read_only(held.data, lock=held.lock) as db, progress_for("checking") as progress:
        if "stream" not in db.column_families:
            raise WriteRefused(
                f"{held.data.shown()} has no stream column family: nothing to repair from; nothing written"
            )
        state = db.state()
        if plan_file is not None:
            header, _ = _plan_header(cluster, state[0], held.data, 0)
            compare = planfile.PlanFileCheck(plan_file, header)
            planned.lines.append(lambda p: compare.add(planfile.repair_lines([p])))
        report = planned.check(db, cluster, "2.10", progress)
    if plan_file is not None and compare is not None:
        planfile.refuse_difference(plan_file, compare.finish(), "--repair --dry-run --save-plan")
    return report, state


def _show_plan(out: CheckOutput, planned: Planned, report: CheckReport, dry_run: bool) -> int:
    """The report with the repair plan: a dry run's, or a real run's that has nothing to write."""
    title = "Repair plan (dry run: nothing written)" if dry_run else "Repair plan: nothing to do"
    info = {"dry_run": dry_run, "planned": _planned_json(planned), "written_streams": 0, "backup": None}
    return _finish(out, planned, report, planned.summary, title, info)


def _planned_json(planned: Planned) -> Lazy:
    return Lazy(repair_json_item(p) for p in planned.spool)


def _finish(
    out: CheckOutput,
    shown: Planned,
    report: CheckReport,
    plan: RepairSummary,
    title: str,
    info: dict[str, Any],
    restore: str | None = None,
) -> int:
    """One streamed check's report (``shown``'s renderers) with the repair's table or object;
    the exit code.  The summary file first: a closed pipe must not lose the CI summary."""
    tables, writer = shown.outputs.tables, shown.outputs.writer
    if tables is not None:
        doc = tables.document(report)
        repair_document(doc, plan, title)
        if restore is not None:
            doc.line(restore)
        if out.summary_file is not None:
            out.append_summary(doc)
        if writer is None:
            render(doc, shown.fmt)
    if writer is not None:
        writer.finish(report, info)
        shown.json.seek(0)
        shutil.copyfileobj(shown.json, sys.stdout)
    return EXIT_FINDINGS if report.digest().exceeds(out.fail_on) else EXIT_OK


def _confirm(data: DataDir, plan: RepairSummary, fmt: str | None, writes: WriteFlags) -> Path | None:
    """Where the backup goes (checked first), the plan shown (not in JSON), then the confirmation."""
    backup_to = backup_location(data, writes.backup_dir, writes.no_backup)
    if resolve_format(fmt) != "json":
        doc = Document(f"kvfix check --repair {data.shown()}")
        repair_document(doc, plan, "Repair plan")
        render(doc, resolve_format(fmt))
    confirm_or_refuse(f"Rewrite {plan.changes} values in {plan.streams} streams of {data.shown()}?", writes.yes)
    return backup_to


def _run(
    held: Held,
    planned: Planned,
    after: Planned,
    state: tuple[str, int],
    cluster: bool | None,
    backup_to: Path | None,
) -> tuple[RunResult, CheckReport]:
    """Back up, write and verify through the executor migrate uses; (the result, the check taken after)."""
    data = held.data
    job = RepairJob(planned.spool, cluster, planned.digest.hexdigest(), state, after.outputs.add, after.outputs.begin)
    job.keep_findings = after.keep
    result = execute(
        data,
        held.lock,
        job,
        planned_files=held.planned_files,
        backup_to=backup_to,
        on_backup=lambda saved: click.echo(f"kvfix: {restore_hint(data, saved)}", err=True),
    )
    raise_for_run(result)
    assert job.after is not None  # a verified run was checked again
    return result, job.after


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


def _report(
    data: DataDir, planned: Planned, after: Planned, result: RunResult, report: CheckReport, out: CheckOutput
) -> int:
    """The check taken after the repair, with what was written."""
    info: dict[str, Any] = {
        "dry_run": False,
        "planned": _planned_json(planned),
        "written_streams": result.applied.done,
        "verified": result.verified,
        "backup": None if result.backup is None else show_path(result.backup),
    }
    restore = None if result.backup is None else restore_hint(data, result.backup)
    title = f"Repaired ({result.applied.done} streams); verified"
    return _finish(out, after, report, planned.summary, title, info, restore)


def _plan_header(cluster: bool | None, identity: str, data: DataDir, streams: int) -> tuple[dict, dict]:
    header = {"command": "check --repair", "options": {"cluster": cluster}, "db_identity": identity}
    return header, {"db_path": data.shown(), "streams": streams}
