"""Which RocksDB wrote a directory: named when newer than kvfix's own; migrate never writes there."""

from __future__ import annotations

import json

from conftest import run_cli, tree_digest, unpack

from kvfix.store.versions import KVFIX_ROCKSDB, writer_of


def _as_if_written_by(d, version: str) -> None:
    """The newest OPTIONS file says another RocksDB wrote the database (as RocksDB records it)."""
    db = d / "db"
    newest = max(db.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    text = newest.read_text()
    old = writer_of(db)
    assert old is not None
    newest.write_text(text.replace(f"rocksdb_version={old.text}", f"rocksdb_version={version}", 1))


def test_writer_version_comes_from_the_newest_options_file(fixture_dir):
    writer = writer_of(fixture_dir / "db")
    assert writer is not None and writer.version <= KVFIX_ROCKSDB  # 2.9/2.10/dev builds: 8.x-9.x
    assert writer.options_file.startswith("OPTIONS-")


def test_newer_rocksdb_is_named_and_never_written(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    _as_if_written_by(d, "11.0.2")
    res = run_cli("scan", d, "--format", "json")
    assert res.exit_code == 1
    newer = [f for f in json.loads(res.stdout)["findings"] if f["code"] == "NEWER_ROCKSDB"]
    assert len(newer) == 1 and "11.0.2" in newer[0]["message"] and newer[0]["severity"] == "info"
    before = tree_digest(tmp_path)
    res = run_cli("migrate", d, "--yes")
    assert res.exit_code == 2 and "newer than kvfix's" in res.stderr and "nothing written" in res.stderr
    assert tree_digest(tmp_path) == before  # refused before the backup, too


def test_older_rocksdb_is_not_mentioned(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    res = run_cli("scan", d, "--format", "json")
    assert not [f for f in json.loads(res.stdout)["findings"] if f["code"] == "NEWER_ROCKSDB"]
