"""Read errors the open itself records (--salvage: an SST file the MANIFEST does not
reference, a WAL damaged before its end) are reported once when two processes scan or
check: the second process's open finds them too, and sends back only what its walk found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kvfix
from kvfix.synth import BulkSpec, bulk_load

ROOT = str(Path(kvfix.__file__).resolve().parents[1])


def _run(workers: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KVFIX_WORKERS": workers, "KVFIX_NO_PROGRESS": "1", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "kvfix", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("command", ["scan", "check"])
def test_open_time_read_errors_are_not_reported_twice(tmp_path: Path, command: str) -> None:
    path = tmp_path / "db"
    bulk_load(path, BulkSpec(streams=40, entries=5, groups=2, consumers=1, pel=2))
    sst = sorted(path.glob("*.sst"))[0]
    shutil.copy(sst, path / "999999.sst")  # an SST file the MANIFEST does not reference
    one = _run("1", command, str(path), "--salvage", "--format", "json")
    two = _run("2", command, str(path), "--salvage", "--format", "json")
    assert one.returncode == 1, one.stderr
    codes_one = [f["code"] for f in json.loads(one.stdout)["findings"]]
    codes_two = [f["code"] for f in json.loads(two.stdout)["findings"]]
    assert codes_one.count("READ_ERROR") == 1
    assert codes_two == codes_one
    assert two.stdout == one.stdout
