"""Inputs scan cannot run on: exit 2, one line on stderr, no traceback, nothing created.

Damage *inside* a good database is different: findings and exit 1, the rest still reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli, run_kvfix, scan_json_cli, tree_digest, unpack

from kvfix.codec.metadata import KeyType, Metadata, StreamId
from kvfix.store.opening import create_database
from kvfix.synth import SynthDB, SynthStream, group_value


def assert_cannot_run(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.endswith("\n")
    line = lines[0]
    assert line.startswith("kvfix: ")
    assert "Traceback" not in proc.stderr and "internal error" not in line
    for needle in needles:
        assert needle in line, line
    return line


def test_missing_path_is_never_created(tmp_path):
    parent = tmp_path / "nope"
    target = parent / "kvrocks"
    for arg in (target, target / "db"):
        line = assert_cannot_run(run_kvfix("scan", arg), "no such file or directory")
        assert str(arg) in line
    assert not target.exists()
    assert not parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "CURRENT"
    f.write_bytes(b"MANIFEST-000001\n")
    before = tree_digest(tmp_path)
    assert_cannot_run(run_kvfix("scan", f), "not a directory")
    assert tree_digest(tmp_path) == before


def test_empty_directory(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    assert_cannot_run(run_kvfix("scan", d), "not a RocksDB directory")
    assert list(d.iterdir()) == []


@pytest.mark.parametrize("layout", ["dir", "dir/db"])
def test_garbage_current(tmp_path, layout):
    root = tmp_path / "kv"
    db = root / "db" if layout == "dir/db" else root
    db.mkdir(parents=True)
    (db / "CURRENT").write_bytes(b"\x00\xffnot a manifest name\n")
    before = tree_digest(tmp_path)
    line = assert_cannot_run(run_kvfix("scan", root), "not a readable RocksDB database")
    # The message names the user's directory, not kvfix's private shadow copy.
    assert str(db.absolute()) in line
    assert "kvfix-ro-" not in line
    assert tree_digest(tmp_path) == before


def test_rocksdb_that_is_not_kvrocks(tmp_path):
    path = tmp_path / "plain"
    with create_database(path, column_families=("default",)) as db:
        db.write([("default", b"k", b"v")])
    before = tree_digest(tmp_path)
    assert_cannot_run(run_kvfix("scan", path), "not Kvrocks", "metadata")
    assert tree_digest(tmp_path) == before


_HOLDER = """
import sys
from rocksdict import Options, Rdict
path = sys.argv[1]
cfs = Rdict.list_cf(path, Options(raw_mode=True))
families = {c: Options(raw_mode=True) for c in cfs if c != "default"}
db = Rdict(path, options=Options(raw_mode=True), column_families=families)
print("ready", flush=True)
sys.stdin.read()
db.close()
"""


def test_locked_by_running_server(tmp_path):
    root = unpack("legacy-basic", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root / "db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = tree_digest(root)
        for arg in (root, root / "db"):
            line = assert_cannot_run(run_kvfix("scan", arg), "LOCK", str(holder.pid))
            assert "stop the server" in line
        assert tree_digest(root) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Released: the same directory scans again.
    assert run_kvfix("scan", root, "--format", "json").returncode == 1


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root (permission bits do not apply) and setpriv is missing to drop privileges")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import kvfix"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and kvfix cannot run as nobody here: {probe.stderr.strip()[-200:]}")
    return prefix


@pytest.mark.parametrize("locked", ["dir", "db"])
def test_unreadable_directory(locked):
    """chmod 000; as root the scan runs as nobody (root bypasses permission bits)."""
    prefix = _as_nobody()
    base = Path(tempfile.mkdtemp(prefix="kvfix-unreadable-"))
    try:
        base.chmod(0o755)
        root = unpack("legacy-basic", base)
        for d in (root, root / "db"):
            d.chmod(0o755)
        target = root if locked == "dir" else root / "db"
        before = tree_digest(root)
        target.chmod(0o000)
        try:
            for arg in (root, root / "db"):
                proc = subprocess.run(
                    [*prefix, sys.executable, "-m", "kvfix", "scan", str(arg)],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "KVFIX_NO_PROGRESS": "1"},
                    timeout=120,
                )
                assert_cannot_run(proc, "Permission denied")
        finally:
            target.chmod(0o755)
        assert tree_digest(root) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_usage_error_is_exit_2():
    result = run_cli("scan")
    assert result.exit_code == 2


# --- damage inside a good database: findings, exit 1 -------------------------------------------


def _good_stream() -> SynthStream:
    return SynthStream(
        b"s", entries=[(StreamId(1700000000000, 0), (b"f", b"v"))], groups=[("prefixed", b"g", group_value())]
    )


def test_corrupt_stream_records_are_findings(tmp_path):
    s = _good_stream()
    s.raw_records += [
        (b"\x00" * 16, b"\x05abc"),  # entry id 0-0 whose value is truncated
        (b"\x00\x00\x00\x00\x00\x00\x00\x01gMETA", b""),  # legacy-looking subkey, cut short
        (b"\xff" * 8 + b"\x01" + b"\x00" * 7 + b"\x01h", b"short"),  # prefixed group, value not 48 bytes
    ]
    other = SynthStream(b"ok", entries=[(StreamId(1700000000000, 1), (b"a", b"b"))])
    path = SynthDB(streams=[s, other]).write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    assert code == 1
    by_key = {st["key"]: st for st in doc["streams"]}
    assert by_key["s"]["records"]["unknown"] == 3
    assert by_key["s"]["records"]["prefixed_group"] == 1
    assert by_key["ok"]["layout"] == "none"
    undecodable = [f for f in doc["findings"] if f["code"] == "UNDECODABLE_RECORD"]
    assert len(undecodable) == 1 and undecodable[0]["key"] == "s" and undecodable[0]["severity"] == "error"
    assert undecodable[0]["details"] == {"records": 3}
    proc = run_kvfix("scan", path, "--format", "plain")
    assert proc.returncode == 1 and proc.stderr == ""


def test_corrupt_metadata_is_a_finding(tmp_path):
    s = _good_stream()
    db = SynthDB(streams=[s])
    db.raw += [
        ("metadata", b"\x0b__namespacebroken", b"\x88\x00\x00"),  # stream flags, expire cut short
        ("metadata", b"\x0b__namespacenotype", b"\x80" + b"\x00" * 8),  # type 0
        ("metadata", b"\x0b__namespaceempty", b""),
        ("metadata", b"\x40", b"\x81" + b"\x00" * 8),  # namespace length past the end of the key
    ]
    path = db.write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    assert code == 1
    bad = [f for f in doc["findings"] if f["code"] == "UNDECODABLE_METADATA"]
    assert len(bad) == 4
    assert {f["key"] for f in bad} == {"broken", "notype", "empty", None}
    assert all(f["severity"] == "error" for f in bad)
    assert [st["key"] for st in doc["streams"]] == ["s"]
    assert run_cli("scan", str(path), "--fail-on", "error", "--format", "json").exit_code == 1


def test_unknown_types_are_findings(tmp_path):
    db = SynthDB(streams=[_good_stream()])
    db.keys += [
        (b"__namespace", b"future1", Metadata(14, True, 0, None, None, tail=b"\x00" * 16)),
        (b"__namespace", b"future2", Metadata(14, True, 0, None, None, tail=b"")),
        (b"__namespace", b"future3", Metadata(15, False, 0, None, None, tail=b"xyz")),
        (b"__namespace", b"h", Metadata(KeyType.HASH, True, 0, 1, 1)),
    ]
    path = db.write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    unknown = [f for f in doc["findings"] if f["code"] == "UNKNOWN_TYPE"]
    assert [(f["details"]["type_id"], f["details"]["count"]) for f in unknown] == [(14, 2), (15, 1)]
    assert all(f["severity"] == "warning" for f in unknown)
    assert code == 1
    assert run_cli("scan", str(path), "--fail-on", "error", "--format", "json").exit_code == 0


@pytest.mark.parametrize("command", [["migrate", "--dry-run"], ["check", "--repair", "--dry-run"]])
@pytest.mark.parametrize("where", ["no-such-dir/plan.jsonl", "a-file/plan.jsonl"])
def test_a_plan_file_that_cannot_be_written_is_one_line(tmp_path, command, where):
    """--save-plan into a missing directory (or under a file): exit 2, one line naming the file."""
    path = unpack("legacy-basic", tmp_path)
    (tmp_path / "a-file").write_text("")
    target = tmp_path / where
    res = run_kvfix(command[0], path, *command[1:], "--save-plan", target)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "cannot write the plan file" in lines[0], lines
    assert "internal error" not in res.stderr and not list(target.parent.glob("*.tmp"))
