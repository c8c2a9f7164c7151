"""Shared test helpers: the real Kvrocks fixtures (copied from ../shared/fixtures) and runners."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvfix.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_NAMES = sorted(p.name[: -len(".tar.gz")] for p in FIXTURES.glob("*.tar.gz"))
LEGACY_FIXTURES = [n for n in FIXTURE_NAMES if n.startswith("legacy-") or n == "upgraded-mixed"]


def manifest(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def unpack(name: str, dest: Path) -> Path:
    """Unpack fixture ``name`` under dest; returns the Kvrocks ``dir`` (the db is dir/db)."""
    with tarfile.open(FIXTURES / f"{name}.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / name


def tree_digest(root: Path) -> dict[str, str]:
    """Every file name under root with a hash of its bytes (dirs too, as names)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


@pytest.fixture(params=FIXTURE_NAMES)
def fixture_name(request) -> str:
    return request.param


@pytest.fixture
def fixture_dir(tmp_path: Path, fixture_name: str) -> Path:
    return unpack(fixture_name, tmp_path)


def run_cli(*args: str, input: str | None = None):
    """Run kvfix in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def run_kvfix(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run kvfix as a real process (``python -m kvfix``), as an operator would."""
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kvfix", *map(str, args)], capture_output=True, text=True, env=env, timeout=300, **kw
    )
