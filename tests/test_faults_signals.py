"""SIGTERM and SIGINT at every phase of a write run, chosen by progress, and the LOCK meanwhile.

``KVFIX_TEST_STOP_AT=<phase>[:<n>]`` makes the real kvfix process stop itself (SIGSTOP) at
that point; the test then sends the signal and continues it.  No sleep, no deadline: the
only waits are waitpid() on the stopped process and generous timeouts against hangs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest, unpack
from fault_helpers import (
    TIMEOUT,
    Run,
    backups_beside,
    fresh_tmp,
    kvfix,
    kvfix_env,
    kvfix_leftovers,
    last_line,
    layouts,
    lock_is_free,
    rocksdb_leftovers,
    stopped_at,
    write_repair_db,
    write_sst_db,
)

M = 12  # streams, one write batch each
NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
KVFIX = Path(__file__).parent.parent / "kvfix"


def build(tmp_path: Path) -> Path:
    """A Kvrocks dir with M streams of legacy groups, in SST files."""
    return write_sst_db(tmp_path / "kv" / "db", M).parent


def _counts(c) -> dict[str, int]:
    return {k: v for k, v in c.items() if v}


PHASES = [
    ("backup", signal.SIGTERM),
    ("backup", signal.SIGINT),
    ("batch:1", signal.SIGINT),
    ("batch:3", signal.SIGTERM),
    (f"batch:{M}", signal.SIGTERM),  # after the last batch
    ("flush", signal.SIGTERM),
    ("flush", signal.SIGINT),
    ("verify", signal.SIGTERM),
    ("verify", signal.SIGINT),
]


@pytest.mark.parametrize(("phase", "signum"), PHASES, ids=[f"{p}-{signal.Signals(s).name}" for p, s in PHASES])
def test_signal_at_each_phase_of_migrate(tmp_path, phase, signum):
    root = build(tmp_path)
    db = root / "db"
    before = tree_digest(root)
    with stopped_at(tmp_path, ["migrate", root, "--yes"], phase) as run:
        assert not lock_is_free(db), f"kvfix stopped at {phase} does not hold the LOCK"
        run.signal(signum)
        run.resume()
        code = run.wait()
    err = run.stderr()
    assert code == CODES[signum], err
    n = int(phase.split(":")[1]) if phase.startswith("batch:") else None
    # the data: nothing at the backup, n streams after batch:n, every stream after that
    if phase == "backup":
        assert tree_digest(root) == before
        assert backups_beside(root) == []
        written = 0
    else:
        assert len(backups_beside(root)) == 1
        written = M if n is None else n
    assert _counts(layouts(root)) == _counts({"prefixed": written, "legacy": M - written})  # never "mixed"
    assert rocksdb_leftovers(db) == []
    assert kvfix_leftovers(run.tmpdir) == []
    # a re-run finishes, or only verifies when everything was written
    again = kvfix(run.tmpdir, "migrate", root, "--yes")
    assert again.returncode == 0, again.stderr
    if written == M:
        assert "nothing to migrate; verified" in again.stderr, again.stderr
    else:
        assert f"applied {M - written} of {M - written} streams (done); verify: ok" in again.stdout
    assert _counts(layouts(root)) == {"prefixed": M}
    assert rocksdb_leftovers(db) == []
    assert kvfix_leftovers(run.tmpdir) == []
    # what the interrupted run said, on one line (after the restore hint, once there is a backup)
    line = last_line(err)
    said = f"kvfix: interrupted by {NAMES[signum]}"
    if phase == "backup":
        assert err.strip() == said
        return
    assert len(err.strip().splitlines()) == 2 and "kvfix: backup at " in err, err
    assert line.startswith(said + ": "), line
    if n is not None:
        assert f": {n} of {M} streams written and verified" in line, line
    else:
        assert f": {M} of {M} streams written, not verified" in line, line
    assert "run the same command again" in line, line


def test_sigterm_at_a_repair_batch(tmp_path):
    streams, n = 6, 2
    root = write_repair_db(tmp_path / "kv" / "db", streams).parent
    tmpdir = fresh_tmp(tmp_path)
    first = run_cli("check", root, "--format", "json")
    assert first.exit_code == 1
    assert sum(f["code"] == "CONSUMER_PENDING_MISMATCH" for f in json.loads(first.stdout)["findings"]) == streams
    with stopped_at(tmp_path, ["check", root, "--repair", "--yes"], f"batch:{n}") as run:
        assert not lock_is_free(root / "db")
        run.signal(signal.SIGTERM)
        run.resume()
        code = run.wait()
    err = run.stderr()
    assert code == 143, err
    line = last_line(err)
    assert line.startswith(f"kvfix: interrupted by SIGTERM: {n} of {streams} streams written and verified"), line
    assert "run the same command again" in line
    after = run_cli("check", root, "--format", "json")
    wrong = sorted(f["key"] for f in json.loads(after.stdout)["findings"] if f["code"] == "CONSUMER_PENDING_MISMATCH")
    assert wrong == [f"claimed:{i:03d}" for i in range(n, streams)]  # the first n repaired, wholly
    assert rocksdb_leftovers(root / "db") == [] and kvfix_leftovers(run.tmpdir) == []
    again = kvfix(tmpdir, "check", root, "--repair", "--yes", "--format", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["repair"]["written_streams"] == streams - n and report["repair"]["verified"] is True
    assert not [f for f in report["findings"] if f["code"] == "CONSUMER_PENDING_MISMATCH"]
    assert rocksdb_leftovers(root / "db") == [] and kvfix_leftovers(tmpdir) == []


def _points() -> set[str]:
    return {m.group(1) for p in KVFIX.rglob("*.py") for m in re.finditer(r"reached\(\s*[\"'](\w+)", p.read_text())}


PLANNING = [
    pytest.param("scan", ("scan",), id="scan"),
    pytest.param("plan", ("migrate", "--yes"), id="migrate-plan"),
    pytest.param("plan", ("migrate", "--dry-run"), id="migrate-dry-run"),
]


@pytest.mark.parametrize(("point", "command"), PLANNING)
def test_sigterm_while_planning(tmp_path, point, command):
    """SIGTERM during the planning read: exit 143, one line, nothing written, nothing left."""
    if point not in _points():
        pytest.skip(f"kvfix has no {point!r} test point (grep 'reached(' kvfix/)")
    root = write_sst_db(tmp_path / "kv" / "db", 100).parent
    before = tree_digest(root)
    run = Run(tmp_path, [command[0], root, *command[1:]], point)
    try:
        run.wait_stopped()
    except AssertionError:
        if run.returncode == 0 and command[1:] == ("--dry-run",):
            pytest.skip(f"migrate --dry-run never reaches the {point!r} test point: no planning point to stop at")
        raise
    run.signal(signal.SIGTERM)
    run.resume()
    assert run.wait() == 143, run.stderr()
    assert run.stderr().strip() == "kvfix: interrupted by SIGTERM"
    assert run.stdout() == ""
    assert tree_digest(root) == before
    assert backups_beside(root) == [] and kvfix_leftovers(run.tmpdir) == []


# --- the LOCK from the first write to the end ---------------------------------------------------

SPINNER = r"""
import fcntl, json, os, select, sys

lock, pid = sys.argv[1], int(sys.argv[2])
db = os.path.dirname(lock)


def kvfix_state():
    # after a won lock: is kvfix alive, does it have LOCK open, a file of db/ open for writing?
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return [False, False, False]
    if state in ("Z", "X"):
        return [False, False, False]
    lock_open = writing = False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                flags = next(int(x.split()[1], 8) for x in fh if x.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if os.path.dirname(target) != db:
            continue
        if os.path.basename(target) == "LOCK":
            lock_open = True
        elif flags & os.O_ACCMODE != os.O_RDONLY:
            writing = True
    return [True, lock_open, writing]


attempts, wins = 0, []
while True:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        won = False
    else:
        won = True
        wins.append(kvfix_state())
    finally:
        os.close(fd)
    attempts += 1
    if attempts == 1:
        print("spinning", "won" if won else "locked", flush=True)
    if select.select([sys.stdin], [], [], 0)[0]:
        break
print(json.dumps({"attempts": attempts, "wins": wins}), flush=True)
"""


@pytest.fixture(scope="module")
def lock_race(tmp_path_factory):
    """kvfix stops after its first batch; a spinner starts taking the LOCK; kvfix runs to its end."""
    tmp_path = tmp_path_factory.mktemp("lock-race")
    root = build(tmp_path)
    db = Path(os.path.realpath(root / "db"))
    with stopped_at(tmp_path, ["migrate", root, "--yes", "--format", "json"], "batch:1") as run:
        spinner = subprocess.Popen(
            [sys.executable, "-c", SPINNER, str(db / "LOCK"), str(run.pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            first = spinner.stdout.readline().split()
            run.resume()
            code = run.wait()  # the spinner spins all along
            spinner.stdin.write("kvfix exited\n")
            spinner.stdin.flush()
            result = json.loads(spinner.stdout.readline())
            spinner.wait(timeout=TIMEOUT)
        finally:
            if spinner.poll() is None:
                spinner.kill()
                spinner.wait()
    return {"first": first, "code": code, "run": run, "root": root, **result}


def test_lock_race_kvfix_finishes_and_the_lock_never_falls_while_writing(lock_race):
    assert lock_race["first"] == ["spinning", "locked"], "the LOCK was free while kvfix was stopped at batch:1"
    run = lock_race["run"]
    assert lock_race["code"] == 0, run.stderr()
    result = json.loads(run.stdout())["result"]
    assert result["verified"] is True and result["streams_applied"] == result["streams_planned"] == M
    while_writing = [w for w in lock_race["wins"] if w[2]]
    assert not while_writing, f"another process took the LOCK {len(while_writing)} times while kvfix was writing"
    assert _counts(layouts(lock_race["root"])) == {"prefixed": M}


def test_lock_is_held_between_rocksdb_close_and_the_end_of_the_run(tmp_path):
    """Deterministic: strace stops kvfix at the unlink of rocksdict-config.json, kvfix's last
    cleanup in the data directory (kvfix.store.opening.open_read_write): the LOCK must be held."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    root = build(tmp_path)
    db = Path(os.path.realpath(root / "db"))
    tmpdir = fresh_tmp(tmp_path)
    r, w = os.pipe()
    cmd = [
        strace,
        "-f",
        "-qq",
        "-o",
        f"/dev/fd/{w}",
        "-P",
        str(db / "rocksdict-config.json"),
        "-e",
        "trace=unlink,unlinkat",
        "-e",
        "inject=unlink,unlinkat:signal=SIGSTOP",
        sys.executable,
        "-m",
        "kvfix",
        "migrate",
        str(root),
        "--yes",
        "--no-backup",
    ]
    proc = subprocess.Popen(
        cmd,
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=kvfix_env(tmpdir),
        start_new_session=True,
    )
    os.close(w)
    trace = os.fdopen(r)
    pid = None
    watchdog = threading.Timer(TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))  # a hang becomes a failure
    watchdog.start()
    try:
        lines = []
        for line in trace:
            lines.append(line)
            if "stopped by SIGSTOP" in line:
                pid = int(line.split()[0])
                break
        if pid is None:
            proc.wait(timeout=TIMEOUT)
            text = proc.stderr.read().decode(errors="replace")
            if "strace:" in text:  # strace's own error (no ptrace permission, an older strace)
                pytest.skip(f"strace cannot trace kvfix here: {text.strip()[:200]}")
            raise AssertionError(f"kvfix never unlinked rocksdict-config.json: {''.join(lines)} {text}")
        assert "rocksdict-config.json" in "".join(lines)
        assert not (db / "rocksdict-config.json").exists()  # cleaned up; kvfix's run is not over
        free = lock_is_free(db)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
            for _ in trace:  # to its end: strace and kvfix exit
                pass
        trace.close()
        code = proc.wait(timeout=TIMEOUT)
        watchdog.cancel()
    assert code == 0
    assert not free, "the LOCK is free while kvfix is still inside its run"


def test_rocksdb_threads_never_take_sigint_or_sigterm(tmp_path):
    """RocksDB's background threads block SIGINT and SIGTERM (they inherit the mask of the open),
    so a signal always reaches the main thread, where kvfix's handler sees it at once."""
    script = (
        "import os, signal, sys\n"
        "from kvfix.store.opening import open_read_only, open_writable\n"
        "with open_writable(sys.argv[1]) as db:\n"
        "    db.write([('stream', b'k', b'v')])\n"
        "    db.flush_all()\n"
        "    with open_read_only(sys.argv[1]) as ro:\n"
        "        main, bits = os.getpid(), 1 << (signal.SIGINT - 1) | 1 << (signal.SIGTERM - 1)\n"
        "        for task in os.listdir('/proc/self/task'):\n"
        "            status = open(f'/proc/self/task/{task}/status').read()\n"
        "            blocked = int(status.split('SigBlk:')[1].split()[0], 16)\n"
        "            print(task == str(main), blocked & bits == bits)\n"
    )
    d = unpack("legacy-basic", tmp_path)
    out = subprocess.run([sys.executable, "-c", script, str(d)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["True", "False"] in rows  # the main thread takes them
    others = [blocked for main, blocked in rows if main == "False"]
    assert others and all(b == "True" for b in others), rows
