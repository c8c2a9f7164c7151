"""Progress on a terminal, nothing of it in pipes; JSON written stream by stream."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from kvfix.analysis.scan import scan_database
from kvfix.render.jsonout import Lazy, dump
from kvfix.render.scan_report import scan_json
from kvfix.store.opening import open_read_only
from kvfix.synth import BulkSpec, bulk_load


@pytest.fixture(scope="module")
def bulk_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bulk") / "db"
    bulk_load(path, BulkSpec(streams=3, entries=3_000, groups=5, consumers=2, pel=40))
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "KVFIX_NO_PROGRESS")}
    env["COLUMNS"] = "120"
    return env


def _run_with_pty(args: list[str], tty: str, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run kvfix with ``tty`` ("stderr" or "stdout") on a pseudo-terminal, the other piped."""
    master, slave = pty.openpty()
    kw = (
        {"stderr": slave, "stdout": subprocess.PIPE}
        if tty == "stderr"
        else {"stdout": slave, "stderr": subprocess.PIPE}
    )
    proc = subprocess.Popen([sys.executable, "-m", "kvfix", *args], env=env or _env(), **kw)
    os.close(slave)
    pipe = (proc.stdout if tty == "stderr" else proc.stderr).fileno()  # type: ignore[union-attr]
    out = {master: b"", pipe: b""}
    open_fds = [master, pipe]
    while open_fds:  # read both sides, so a full pipe never blocks the child
        ready, _, _ = select.select(open_fds, [], [], 60)
        if not ready:
            break
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO on the pty master: the child closed its side
                chunk = b""
            if chunk:
                out[fd] += chunk
            else:
                open_fds.remove(fd)
    code = proc.wait(timeout=60)
    os.close(master)
    return code, out[master], out[pipe]


def test_progress_on_a_terminal_stderr(bulk_db: Path) -> None:
    code, terminal, stdout = _run_with_pty(["scan", str(bulk_db), "--deep", "--format", "json"], "stderr")
    assert code in (0, 1)
    assert b"scanning" in terminal
    assert b"streams" in terminal and b"records" in terminal
    doc = json.loads(stdout)  # the report itself is untouched by the bar
    assert doc["summary"]["records_entry"] == 9_000


def test_progress_on_a_terminal_stdout_only(bulk_db: Path) -> None:
    code, terminal, stderr = _run_with_pty(["scan", str(bulk_db), "--format", "json"], "stdout")
    assert code in (0, 1)
    assert b"scanning" in terminal
    assert stderr == b""


def test_no_progress_in_pipes(bulk_db: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kvfix", "scan", str(bulk_db), "--deep", "--format", "json"],
        capture_output=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode in (0, 1)
    assert proc.stderr == b""
    assert b"scanning" not in proc.stdout and b"\x1b[" not in proc.stdout
    json.loads(proc.stdout)


def test_no_progress_when_disabled(bulk_db: Path) -> None:
    for var in ("KVFIX_NO_PROGRESS", "CI"):
        code, terminal, stdout = _run_with_pty(
            ["scan", str(bulk_db), "--format", "json"], "stderr", {**_env(), var: "1"}
        )
        assert code in (0, 1)
        assert terminal == b""
        json.loads(stdout)


def test_streamed_json_equals_json_dumps(bulk_db: Path) -> None:
    with open_read_only(bulk_db) as db:
        report = scan_database(db, deep=True, now_ms=0)
    for records in (False, True):
        full = scan_json(report, with_pel=True, records=records)
        for pretty, options in ((False, {"separators": (",", ":")}), (True, {"indent": 2})):
            out = io.StringIO()
            dump(scan_json(report, with_pel=True, lazy=True, records=records), out, pretty=pretty)
            assert out.getvalue() == json.dumps(full, ensure_ascii=False, **options) + "\n"
    lazy = scan_json(report, lazy=True)
    assert isinstance(lazy["streams"], Lazy)  # built one stream at a time while written


def test_dump_nested_lazy_and_empty() -> None:
    def make() -> object:
        return {"a": [1, {"b": []}], "s": Lazy(iter([{"x": 1, "y": [1, 2]}, {"z": {}}])), "e": Lazy(iter([])), "t": "é"}

    def plain(o: object) -> object:
        if isinstance(o, Lazy):
            return [plain(x) for x in o]
        if isinstance(o, dict):
            return {k: plain(v) for k, v in o.items()}
        if isinstance(o, list):
            return [plain(x) for x in o]
        return o

    for pretty, options in ((False, {"separators": (",", ":")}), (True, {"indent": 2})):
        out = io.StringIO()
        dump(make(), out, pretty=pretty)
        assert out.getvalue() == json.dumps(plain(make()), ensure_ascii=False, **options) + "\n"
