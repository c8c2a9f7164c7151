"""A full disk at the backup, during the batches and at the flush, on a small tmpfs mounted here.

The disk is filled at a point chosen by progress: the kvfix process stops itself there
(KVFIX_TEST_STOP_AT), a ballast file fills the filesystem, and the process continues.
Skipped only when a tmpfs cannot be mounted (not root, or no permission).
"""

from __future__ import annotations

import os
import re

from conftest import tree_digest, unpack
from fault_helpers import (
    fill,
    fresh_tmp,
    kvfix,
    kvfix_leftovers,
    last_line,
    layouts,
    leave_free,
    only_line,
    rocksdb_leftovers,
    stopped_at,
    tmpfs,
    write_repair_db,
    write_sst_db,
)

STREAMS = 300


def _no_backup_in(root) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.kvfix-backup-*"))


def test_backup_that_does_not_fit_beside_the_data_is_removed(tmp_path):
    """legacy-basic (data only in its WAL) on a tmpfs with one free page: the WAL copy cannot fit."""
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        root = unpack("legacy-basic", mnt)
        assert (root / "db" / "000010.log").stat().st_size > 4096
        leave_free(mnt, mnt / "ballast", 4096)
        before = tree_digest(root)
        tmpdir = fresh_tmp(tmp_path)
        proc = kvfix(tmpdir, "migrate", root, "--yes")
        assert proc.returncode == 2, proc.stderr
        line = only_line(proc.stderr)
        assert "space" in line and "nothing written" in line, line
        assert tree_digest(root) == before
        assert _no_backup_in(mnt) == [], "a partial backup was left"
        assert rocksdb_leftovers(root / "db") == [] and kvfix_leftovers(tmpdir) == []


def test_backup_dir_on_a_full_filesystem_is_refused_for_repair(tmp_path):
    """check --repair --backup-dir onto a tiny second tmpfs: the first copy does not fit."""
    root = write_repair_db(tmp_path / "kv" / "db", 3).parent
    with tmpfs(tmp_path / "small", "4k") as small:
        before = tree_digest(root)
        tmpdir = fresh_tmp(tmp_path)
        proc = kvfix(tmpdir, "check", root, "--repair", "--yes", "--backup-dir", small / "bk")
        assert proc.returncode == 2, proc.stderr
        line = last_line(proc.stderr)
        assert "space" in line and "nothing written" in line, line
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert tree_digest(root) == before
        assert _no_backup_in(small) == [], "a partial backup was left"
        assert rocksdb_leftovers(root / "db") == [] and kvfix_leftovers(tmpdir) == []


def _fill_at(tmp_path, mnt, point: str):
    """A migrate of a generated database on ``mnt`` whose disk the ballast fills at ``point``;
    (kvfix dir, exit code, stderr, the run's TMPDIR), the ballast removed again."""
    root = write_sst_db(mnt / "kv" / "db", STREAMS).parent
    ballast = mnt / "ballast"
    with stopped_at(tmp_path, ["migrate", root, "--yes"], point) as run:
        fill(ballast)
        run.resume()
        code = run.wait()
    err = run.stderr()
    assert rocksdb_leftovers(root / "db") == [] and kvfix_leftovers(run.tmpdir) == []
    os.unlink(ballast)
    return root, code, err, run.tmpdir


def test_disk_full_during_the_batches(tmp_path):
    """The ballast fills the disk after the 5th stream: a later batch fails; every stream stays whole."""
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        root, code, err, run_tmp = _fill_at(tmp_path, mnt, "batch:5")
        seen = dict(layouts(root))  # each stream wholly in one layout: no "mixed"
        assert set(seen) == {"prefixed", "legacy"} and sum(seen.values()) == STREAMS, seen
        n = seen["prefixed"]
        assert 5 <= n < STREAMS
        again = kvfix(run_tmp, "migrate", root, "--yes")
        assert again.returncode == 0, again.stderr
        assert f"applied {STREAMS - n} of {STREAMS - n} streams (done); verify: ok" in again.stdout
        assert dict(layouts(root)) == {"prefixed": STREAMS}
        assert rocksdb_leftovers(root / "db") == []
    # what the failed run said
    assert code == 2, err
    line = last_line(err)
    assert "disk full" in line and "internal error" not in line, line
    assert f"{n} of {STREAMS} streams written" in line, line
    assert "run the same command again" in line, line


def test_disk_full_at_the_flush(tmp_path):
    """The ballast fills the disk after the last batch: every stream is written, the flush fails."""
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        root, code, err, run_tmp = _fill_at(tmp_path, mnt, "flush")
        assert dict(layouts(root)) == {"prefixed": STREAMS}
        again = kvfix(run_tmp, "migrate", root, "--yes")
        assert again.returncode == 0, again.stderr
        assert "nothing to migrate; verified" in again.stderr, again.stderr
        assert rocksdb_leftovers(root / "db") == []
    # what the failed run said: exit 3 (written, not verified) or 2, with a line that explains
    line = last_line(err)
    assert code in (2, 3), err
    assert "internal error" not in line, f"exit {code} without saying how far the run got: {line}"
    assert f"{STREAMS} of {STREAMS} streams written" in line, line
    if code == 3:
        assert "not verified" in line and "run the same command again" in line, line
    else:
        assert re.search(r"disk full|space", line), line
