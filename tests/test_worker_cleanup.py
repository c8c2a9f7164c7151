"""A second process leaves nothing behind when its parent is killed (SIGKILL: no cleanup).

The second process (kvfix.analysis.scanworker) keeps its temporary files, the read-only
shadow of the database above all, in its parent's temporary directory, and removes that
directory when it sees its parent gone.  The test stops it at its first progress check
(KVFIX_TEST_STOP_AT=worker-tick:1, by progress, not by time), kills the parent, lets it
go on, and looks at TMPDIR: only the parent's own shadow is left (a killed process cannot
remove its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import TIMEOUT, fresh_tmp, kvfix_env
from test_migrate_streamed import small_streams

from kvfix.synth import SynthDB


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _stopped_child(parent: int) -> int:
    """The pid of ``parent``'s child once it has stopped itself."""
    deadline = time.monotonic() + TIMEOUT  # a guard against a hang, not a measure of speed
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _status(int(entry))
                if st.get("PPid", "").strip() == str(parent) and st.get("State", "").startswith("T"):
                    return int(entry)
        time.sleep(0.05)
    raise AssertionError("the second process never stopped at its first progress check")


def _gone(pid: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if _status(pid).get("State", "Z").startswith(("Z", "X")):
            return
        time.sleep(0.05)
    raise AssertionError("the second process did not end after its parent was killed")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", [["scan"], ["check"], ["stats"], ["migrate", "--dry-run"]])
def test_a_killed_parent_leaves_no_second_process_files(tmp_path: Path, command: list[str]) -> None:
    db = SynthDB(streams=small_streams(40)).write(tmp_path / "db")
    tmpdir = fresh_tmp(tmp_path)
    env = {**kvfix_env(tmpdir, "worker-tick:1"), "KVFIX_WORKERS": "2"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "kvfix", command[0], str(db), *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        worker = _stopped_child(parent.pid)
        assert any(p.name.startswith("kvfix-") for p in tmpdir.iterdir())
        parent.kill()
        parent.wait(timeout=TIMEOUT)
        os.kill(worker, signal.SIGCONT)
        _gone(worker)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=TIMEOUT)
    left = sorted(p.name for p in tmpdir.iterdir())
    assert len(left) == 1 and left[0].startswith("kvfix-ro-"), left  # the parent's own shadow
