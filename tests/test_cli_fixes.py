"""Two CLI bugs, fixed: a real ``check --repair --verify-checksums`` reported no checksum pass, and a real
``migrate`` with nothing to write said ``"result": null`` although it verified."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from check_helpers import damage, set_meta
from conftest import run_cli, tree_digest, unpack

from kvfix.errors import ReadError
from kvfix.migrations import for_target

SCHEMAS = Path(__file__).parent.parent / "schemas"


def schema_errors(name: str, doc: dict) -> list[str]:
    s = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return [e.message for e in jsonschema.Draft202012Validator(s).iter_errors(doc)]


def damaged(tmp_path: Path) -> Path:
    """legacy-basic with one wrong counter (orders' size), so a repair has one stream to write."""
    path = unpack("legacy-basic", tmp_path)
    damage(path / "db", lambda db: set_meta(db, b"orders", size=99))
    return path


# --- a) check --repair --yes --verify-checksums ---------------------------------------------------


def test_real_repair_reads_every_record_after_verifying(tmp_path):
    path = damaged(tmp_path)
    res = run_cli("check", path, "--repair", "--yes", "--no-backup", "--verify-checksums", "--format", "json")
    assert res.exit_code == 1, res.stderr  # legacy-basic's layout findings stay
    doc = json.loads(res.stdout)
    assert doc["repair"]["written_streams"] == 1 and doc["repair"]["verified"] is True
    assert set(doc["verified_records"]) == set(doc["db"]["column_families"])
    assert schema_errors("check", doc) == []
    # The records of the repaired database, as a plain check --verify-checksums counts them.
    again = json.loads(run_cli("check", path, "--verify-checksums", "--format", "json").stdout)
    assert doc["verified_records"] == again["verified_records"]
    assert sum(doc["verified_records"].values()) > 0


def test_real_repair_says_checksums_in_text(tmp_path):
    path = damaged(tmp_path)
    res = run_cli("check", path, "--repair", "--yes", "--no-backup", "--verify-checksums", "--format", "plain")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(run_cli("check", path, "--verify-checksums", "--format", "json").stdout)
    n = sum(doc["verified_records"].values())
    line = f"checksums: every block of every file read cleanly ({n:,} records in all column families)"
    assert line in res.stdout
    assert "Repaired (1 streams); verified" in res.stdout
    assert res.stdout.index(line) < res.stdout.index("Repaired (1 streams)")  # at the top, as without --repair


def test_real_repair_with_nothing_to_write_reads_every_record(tmp_path):
    path = unpack("legacy-basic", tmp_path)
    before = tree_digest(path)
    res = run_cli("check", path, "--repair", "--yes", "--verify-checksums", "--format", "json")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert all(not p["writes"] for p in doc["repair"]["planned"])
    assert doc["repair"]["written_streams"] == 0
    assert set(doc["verified_records"]) == set(doc["db"]["column_families"])
    assert schema_errors("check", doc) == []
    assert tree_digest(path) == before


def test_real_repair_without_the_flag_has_no_verified_records(tmp_path):
    path = damaged(tmp_path)
    res = run_cli("check", path, "--repair", "--yes", "--no-backup", "--format", "json")
    assert res.exit_code == 1, res.stderr
    assert "verified_records" not in json.loads(res.stdout)


def test_a_failed_checksum_pass_after_a_repair_says_the_repair_went_through(tmp_path, monkeypatch):
    path = damaged(tmp_path)

    def unreadable(db):
        raise ReadError(f"{db.path}: read error in column family 'default': Corruption: block checksum mismatch")

    monkeypatch.setattr("kvfix.cli.repair.read_every_record", unreadable)
    res = run_cli("check", path, "--repair", "--yes", "--no-backup", "--verify-checksums", "--format", "json")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert "1 of 1 streams written and verified, but --verify-checksums failed: " in res.stderr
    assert "block checksum mismatch" in res.stderr
    # The repair itself is in: a second one has nothing to write.
    again = json.loads(run_cli("check", path, "--repair", "--dry-run", "--format", "json").stdout)
    assert all(not p["writes"] for p in again["repair"]["planned"])


# --- b) migrate --yes with nothing to write -----------------------------------------------------

NOTHING_WRITTEN = {
    "streams_applied": 0,
    "streams_planned": 0,
    "interrupted": False,
    "stopped": None,
    "verified": True,
    "unverified_reason": None,
    "problems": [],
    "foreign_files": [],
}


@pytest.mark.parametrize("backup", [(), ("--no-backup",)])
def test_migrate_with_nothing_to_write_reports_a_verified_result(tmp_path, backup):
    path = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", path, "--yes", "--no-backup").exit_code == 0
    before = tree_digest(tmp_path)
    res = run_cli("migrate", path, "--yes", *backup, "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dry_run"] is False and doc["blocked"] is False
    assert doc["result"] == NOTHING_WRITTEN
    assert doc["backup"] is None  # nothing written, so no backup taken
    assert schema_errors("migrate", doc) == []
    assert "nothing to migrate; verified: no live stream holds legacy group records" in res.stderr
    assert tree_digest(tmp_path) == before


def test_migrate_with_nothing_to_write_shape_equals_a_real_runs(tmp_path):
    path = unpack("legacy-basic", tmp_path)
    first = json.loads(run_cli("migrate", path, "--yes", "--no-backup", "--format", "json").stdout)
    second = json.loads(run_cli("migrate", path, "--yes", "--no-backup", "--format", "json").stdout)
    assert first["result"]["verified"] and first["result"]["streams_applied"] > 0
    assert list(second["result"]) == list(first["result"])
    assert list(second) == list(first)


def test_migrate_with_nothing_to_write_and_a_failed_verification(tmp_path, monkeypatch):
    path = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", path, "--yes", "--no-backup").exit_code == 0
    migration = type(for_target("prefixed"))
    monkeypatch.setattr(migration, "verify", lambda self, db, plan, done: ["orders: a planted problem"])
    res = run_cli("migrate", path, "--yes", "--format", "json")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["result"] == {**NOTHING_WRITTEN, "verified": False, "problems": ["orders: a planted problem"]}
    assert schema_errors("migrate", doc) == []
    assert res.stderr == "kvfix: verification failed: orders: a planted problem (1 problem)\n"


def test_migrate_text_with_nothing_to_write_is_unchanged(tmp_path):
    """Only JSON gained the result: the text still shows the (empty) plan, not a run's result lines."""
    path = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", path, "--yes", "--no-backup").exit_code == 0
    res = run_cli("migrate", path, "--yes", "--format", "plain")
    assert res.exit_code == 0, res.stderr
    assert "nothing to do: no live stream holds legacy group records" in res.stdout
    assert "backup:" not in res.stdout and "verify:" not in res.stdout


def test_schema_refuses_a_real_run_without_its_result(tmp_path):
    """The old output (a real, unrefused run with "result": null) no longer validates."""
    path = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", path, "--yes", "--no-backup").exit_code == 0
    doc = json.loads(run_cli("migrate", path, "--yes", "--format", "json").stdout)
    assert schema_errors("migrate", doc) == []
    assert schema_errors("migrate", {**doc, "result": None}) != []
    dry = json.loads(run_cli("migrate", path, "--dry-run", "--format", "json").stdout)
    assert dry["result"] is None and schema_errors("migrate", dry) == []
