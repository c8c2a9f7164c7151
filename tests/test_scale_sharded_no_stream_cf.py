"""A database without a stream column family (its streams have no records) is scanned and
checked in one process, whatever KVFIX_WORKERS says: a part of the walk (a Half) reads the
live streams from their records' family, so two processes would report none of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kvfix
from kvfix.codec import KeyType, Metadata, MetadataKey, StreamTail
from kvfix.store.opening import create_database
from kvfix.synth import BASE_VERSION, DEFAULT_NS

ROOT = str(Path(kvfix.__file__).resolve().parents[1])


def _run(workers: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KVFIX_WORKERS": workers, "KVFIX_NO_PROGRESS": "1", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "kvfix", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("command", ["scan", "check"])
def test_streams_of_a_database_without_stream_cf_survive_two_processes(tmp_path: Path, command: str) -> None:
    path = tmp_path / "db"
    meta = Metadata(KeyType.STREAM, True, 0, BASE_VERSION, 0, stream=StreamTail())
    with create_database(path, column_families=("default", "metadata")) as db:
        db.write([("metadata", MetadataKey(DEFAULT_NS, b"s%d" % i).encode(), meta.encode()) for i in range(4)])
    one = _run("1", command, str(path), "--format", "json")
    two = _run("2", command, str(path), "--format", "json")
    assert len(json.loads(one.stdout)["streams"]) == 4
    assert len(json.loads(two.stdout)["streams"]) == 4
    assert (two.returncode, two.stdout) == (one.returncode, one.stdout)
