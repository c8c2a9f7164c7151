"""Shared by the fault tests (tests/test_faults_*.py): damage real RocksDB files, generate
databases, run real kvfix processes and stop them by progress, fill a small tmpfs.

Nothing here mocks RocksDB: every database is a real directory, every damage is done to
the bytes of its real files, every process is ``python -m kvfix`` as an operator runs it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvfix.analysis.scan import scan_database
from kvfix.codec.keys import InternalKey, MetadataKey
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import PREFIXED, ConsumerValue, PelValue
from kvfix.store.opening import create_database, open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value

T = 1_795_775_557_000
#: Only turns a hang into a failure; nothing waits on it for synchronisation.
TIMEOUT = 240
BACKUP_HINT = re.compile(r"^kvfix: backup at (.+?); to restore it", re.M)
WRITTEN = re.compile(r"(\d+) of (\d+) streams written")

# --- generated databases ---------------------------------------------------------------------


def legacy_streams(n: int) -> list[SynthStream]:
    """n streams, each with 3 entries and 2 legacy groups (a consumer and a PEL record each)."""
    streams = []
    for i in range(n):
        ids = [StreamId(T + i, s) for s in range(3)]
        s = SynthStream(b"stream:%05d" % i, entries=[(x, (b"field", b"value-%d" % i)) for x in ids])
        for g in (b"billing", b"audit"):
            s.groups.append(("legacy", g, group_value(ids[-1], consumers=1, pending=1, entries_read=3)))
            s.consumers.append(("legacy", g, b"worker", ConsumerValue(1, T, T)))
            s.pel.append(("legacy", g, ids[0], PelValue(T, 1, b"worker")))
        streams.append(s)
    return streams


def write_sst_db(db_path: Path, n: int = 300) -> Path:
    """A generated database in SST files (SynthDB.write flushes before closing)."""
    SynthDB(streams=legacy_streams(n)).write(db_path)
    assert list(db_path.glob("*.sst"))
    return db_path


def stream_ops(synth: SynthDB, s: SynthStream) -> list:
    """The (cf, key, value) writes of one stream, encoded as SynthDB.write encodes them."""
    slot = synth.slot(s.key)
    ops = [("metadata", MetadataKey(s.namespace, s.key, slot).encode(), s.metadata().encode())]
    ops += [("stream", InternalKey(s.namespace, s.key, s.version, sub, slot).encode(), v) for sub, v in s.records()]
    return ops


def write_wal_db(db_path: Path, n: int = 300) -> Path:
    """A generated database whose data is only in its write-ahead log: one batch per stream, no flush."""
    synth = SynthDB(streams=legacy_streams(n))
    with create_database(db_path) as db:  # closes without flushing; it removes rocksdict-config.json
        for s in synth.streams:
            db.write(stream_ops(synth, s), sync=False)
    assert not list(db_path.glob("*.sst")), "the data must stay in the WAL"
    assert not (db_path / "rocksdict-config.json").exists()
    return db_path


def xclaim_stream(i: int) -> SynthStream:
    """tests/test_check_synth.py's xclaim_trace: c1's pending counter is 2, it owns 1 entry."""
    e = [StreamId(T + i, k) for k in range(3)]
    return SynthStream(
        b"claimed:%03d" % i,
        entries=[(x, (b"f", b"v")) for x in e],
        groups=[(PREFIXED, b"g", group_value(e[1], consumers=2, pending=2))],
        consumers=[(PREFIXED, b"g", b"c1", ConsumerValue(2, T, T)), (PREFIXED, b"g", b"c2", ConsumerValue(1, T, T))],
        pel=[(PREFIXED, b"g", e[0], PelValue(T, 1, b"c1")), (PREFIXED, b"g", e[1], PelValue(T, 1, b"c2"))],
    )


def write_repair_db(db_path: Path, n: int) -> Path:
    """n streams that each need one repair (CONSUMER_PENDING_MISMATCH)."""
    return SynthDB(streams=[xclaim_stream(i) for i in range(n)]).write(db_path)


# --- damaging files --------------------------------------------------------------------------


def flip(path: Path, offset: int, n: int = 1) -> None:
    """Invert n bytes of path at offset (a bad sector, a bit rot)."""
    data = bytearray(path.read_bytes())
    assert offset >= 0 and offset + n <= len(data), (path, offset, n, len(data))
    for i in range(offset, offset + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = buf[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


SST_MAGIC = 0x88E241B785F4CFF7  # kBlockBasedTableMagicNumber
FOOTER = 53  # format_version >= 1: checksum type, two handles padded to 40 bytes, version, magic


def sst_footer(path: Path) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(format version, metaindex handle, index handle) of a block-based SST file."""
    data = path.read_bytes()
    assert int.from_bytes(data[-8:], "little") == SST_MAGIC, path
    version = int.from_bytes(data[-12:-8], "little")
    assert 1 <= version <= 5, f"{path}: footer format {version} is not the 53-byte one"
    foot = data[-FOOTER:]
    i = 1
    meta_off, i = _varint(foot, i)
    meta_size, i = _varint(foot, i)
    index_off, i = _varint(foot, i)
    index_size, i = _varint(foot, i)
    return version, (meta_off, meta_size), (index_off, index_size)


def sst_column_family(path: Path) -> str:
    """The column family an SST file belongs to, from its properties block (stored uncompressed)."""
    data = path.read_bytes()
    i = data.find(b"column.family.id")
    j = data.find(b"name", i)
    assert i >= 0 and j > i, path
    size = data[j - 1]
    return data[j + 4 : j + 4 + size].decode()


def sst_for(db: Path, cf: str) -> Path:
    found = [p for p in sorted(db.glob("*.sst")) if sst_column_family(p) == cf]
    assert len(found) == 1, (cf, found)
    return found[0]


def manifest(db: Path) -> Path:
    current = (db / "CURRENT").read_text().strip()
    return db / current


def wal(db: Path) -> Path:
    logs = [p for p in sorted(db.glob("*.log")) if p.stat().st_size]
    assert len(logs) == 1, logs
    return logs[0]


BLOCK = 32768


def log_records(path: Path) -> list[tuple[int, int, int]]:
    """(start, end, type) of every physical record of a RocksDB log file (WAL or MANIFEST)."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's trailer: zero padding
            pos += left
            continue
        length = data[pos + 4] | data[pos + 5] << 8
        kind = data[pos + 6]
        if kind == 0 and length == 0:
            pos += left
            continue
        out.append((pos, pos + 7 + length, kind))
        pos += 7 + length
    return out


def cut_mid_record(path: Path, fraction: float) -> int:
    """Truncate path in the middle of the record holding ``fraction`` of its size; returns the new size."""
    size = path.stat().st_size
    at = int(size * fraction)
    start, end, _ = next(r for r in log_records(path) if r[0] <= at < r[1])
    cut = start + (end - start) // 2
    assert start < cut < end
    truncate(path, cut)
    return cut


# --- running kvfix -----------------------------------------------------------------------------


def kvfix_env(tmpdir: Path, stop_at: str | None = None) -> dict[str, str]:
    """TMPDIR of our own; one synced write batch per stream, so ``batch:N`` is after N streams."""
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1", "KVFIX_BATCH_RECORDS": "1", "TMPDIR": str(tmpdir)}
    env.pop("KVFIX_TEST_STOP_AT", None)
    env.pop("KVFIX_DEBUG", None)
    if stop_at is not None:
        env["KVFIX_TEST_STOP_AT"] = stop_at
    return env


def fresh_tmp(tmp_path: Path) -> Path:
    """A new, empty directory to be the kvfix process's TMPDIR."""
    d = tmp_path / "tmpdir"
    d.mkdir(exist_ok=True)
    return d


def kvfix(tmpdir: Path, *args: object) -> subprocess.CompletedProcess:
    """``python -m kvfix ARGS`` as a real process, TMPDIR=tmpdir."""
    return subprocess.run(
        [sys.executable, "-m", "kvfix", *map(str, args)],
        capture_output=True,
        text=True,
        env=kvfix_env(tmpdir),
        timeout=TIMEOUT,
    )


def start_kvfix(tmpdir: Path, *args: object) -> subprocess.Popen:
    """Like :func:`kvfix`, started and not waited for (to run independent processes at once)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kvfix", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kvfix_env(tmpdir),
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """(exit code, stderr) of a process from :func:`start_kvfix`."""
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err


def kvfix_leftovers(tmpdir: Path) -> list[str]:
    return sorted(n for n in os.listdir(tmpdir) if n.startswith("kvfix-"))


def backups_beside(kvrocks_dir: Path) -> list[Path]:
    return sorted(kvrocks_dir.parent.glob("*.kvfix-backup-*"))


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr!r}"
    assert lines[0].startswith("kvfix: "), lines[0]
    return lines[0]


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("kvfix: "), lines[-1]
    return lines[-1]


class Run:
    """A kvfix process started with KVFIX_TEST_STOP_AT, stdout and stderr in files (no pipe to fill)."""

    def __init__(self, tmp_path: Path, args: list[object], stop_at: str, name: str = "run") -> None:
        self.tmpdir = fresh_tmp(tmp_path)
        self.out_path = tmp_path / f"{name}.stdout"
        self.err_path = tmp_path / f"{name}.stderr"
        self.stop_at = stop_at
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kvfix", *map(str, args)],
                stdout=out,
                stderr=err,
                env=kvfix_env(self.tmpdir, stop_at),
            )
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_stopped(self) -> None:
        """Block until the process stopped itself at its test point (a watchdog kills a hang)."""
        watchdog = threading.Timer(TIMEOUT, self.proc.kill)
        watchdog.start()
        try:
            _, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        finally:
            watchdog.cancel()
        if not os.WIFSTOPPED(status):
            self.proc.returncode = self.returncode = os.waitstatus_to_exitcode(status)
            raise AssertionError(
                f"kvfix never reached {self.stop_at}: exit {self.returncode}, stderr {self.stderr()!r}"
            )

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self.proc.wait(timeout=TIMEOUT)
        return self.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)

    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()


@contextlib.contextmanager
def stopped_at(tmp_path: Path, args: list[object], stop_at: str, name: str = "run") -> Iterator[Run]:
    """A kvfix process stopped at ``stop_at``; killed on the way out if the test left it running."""
    run = Run(tmp_path, args, stop_at, name)
    try:
        run.wait_stopped()
        yield run
    finally:
        if run.proc.poll() is None and run.returncode is None:
            run.resume()
            run.kill()


# --- looking at a database ---------------------------------------------------------------------


def layouts(path: Path) -> Counter[str]:
    """How many streams are in each layout; "mixed" would be a stream half-moved."""
    with open_read_only(path) as db:
        report = scan_database(db)
    return Counter(s.layout for s in report.streams)


def lock_is_free(db: Path) -> bool:
    """Whether this (other) process could take RocksDB's LOCK right now (released at once)."""
    fd = os.open(db / "LOCK", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        assert exc.errno in (errno.EACCES, errno.EAGAIN), exc
        return False
    finally:
        os.close(fd)  # also releases a lock taken here
    return True


def rocksdb_leftovers(db: Path) -> list[str]:
    """What a finished or stopped kvfix run must never leave in db/."""
    return sorted(n for n in os.listdir(db) if n == "rocksdict-config.json" or n.startswith("LOG"))


# --- a small filesystem -----------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount -o size=) at path, unmounted on the way out; skip if not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small filesystem")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root and mount permission): {r.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> int:
    """Write a ballast file at path until the filesystem is full; returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            block = b"\0" * chunk
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block)
        try:
            os.write(fd, b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        else:
            raise AssertionError("the filesystem did not fill up")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def leave_free(path: Path, ballast: Path, free: int) -> None:
    """Fill the filesystem with ballast, then give back exactly ``free`` bytes (whole pages)."""
    size = fill(ballast)
    truncate(ballast, size - size % 4096 - free)
    st = os.statvfs(path)
    assert st.f_bavail * st.f_frsize == free, (st.f_bavail, st.f_frsize, free)
