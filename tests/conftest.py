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
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1", **kw.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-m", "kvfix", *map(str, args)], capture_output=True, text=True, env=env, timeout=300, **kw
    )


# --- scan helpers (appended for the scan test suite) -------------------------------------


def scan_lib(path: Path, **kw):
    """scan_database on a read-only open of path (library API, no CLI)."""
    from kvfix.analysis.scan import scan_database
    from kvfix.store.opening import open_read_only

    with open_read_only(path) as db:
        return scan_database(db, **kw)


def scan_json_cli(path: Path, *args: str) -> tuple[int, dict]:
    """``kvfix scan PATH --format json --records ARGS`` in-process: (exit code, parsed JSON with every record)."""
    result = run_cli("scan", str(path), "--format", "json", "--records", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


# --- migrate helpers (appended for the migrate test suite) -------------------------------


def dump_all(path: Path) -> dict[str, dict[bytes, bytes]]:
    """Every key and value of every column family (read-only open), for exact comparisons."""
    from kvfix.store.opening import open_read_only

    out: dict[str, dict[bytes, bytes]] = {}
    with open_read_only(path) as db:
        for cf in db.column_families:
            it = db.iterator(cf)
            it.seek_to_first()
            rows = {}
            while it.valid():
                rows[it.key()] = it.value()
                it.next()
            out[cf] = rows
    return out


def records_view(scan_doc: dict, layout_as: str | None = None) -> dict:
    """scan JSON (with --pel) in the manifests' ``records`` shape; layout_as renames the layout."""
    out: dict = {}
    for s in scan_doc["streams"]:
        for g in s["groups"]:
            lay = layout_as or g["layout"]
            out.setdefault(s["namespace"], {}).setdefault(s["key"], {})[f"{lay}:{g['name']}"] = {
                "consumers": len(g["consumers"]),
                "consumer_pending": {c["name"]: c["pending"] for c in g["consumers"]},
                "last-delivered-id": g["last_delivered_id"],
                "pending": g["pending"],
                "pel": [[p["id"], p["consumer"], p["delivery_count"]] for p in g["pel"]],
            }
    return out
