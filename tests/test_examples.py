"""The README's example data and walkthrough run as documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import run_kvfix, tree_digest, unpack

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "data" / "legacy-basic"


def test_example_data_scans_as_legacy_and_stays_untouched() -> None:
    before = tree_digest(EXAMPLE)
    result = run_kvfix("scan", EXAMPLE, "--format", "json")
    assert result.returncode == 1, result.stderr  # legacy records are findings
    assert '"layout":"legacy"' in result.stdout
    assert tree_digest(EXAMPLE) == before


def test_walkthrough_runs_every_step() -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "1"}
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "walkthrough.sh")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    exits = [int(x) for x in re.findall(r"^\(exit (\d+)\)$", result.stdout, re.M)]
    # scan finds legacy records; list, dry run, migrate, re-scan, check, backups, rollback
    # succeed; for the 2.9 it is rolled back to, the final scan and check are clean.
    assert exits == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], result.stdout[-3000:]
    assert "verify: ok" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_walkthrough_fails_when_a_step_ends_otherwise(tmp_path) -> None:
    """set -e and the stated exit codes: a step that ends with another code stops the script."""
    script = (ROOT / "examples" / "walkthrough.sh").read_text().replace("expect 1 kvfix scan", "expect 0 kvfix scan", 1)
    copy = tmp_path / "examples" / "walkthrough.sh"
    copy.parent.mkdir()
    copy.write_text(script)
    (tmp_path / "examples" / "data").symlink_to(ROOT / "examples" / "data")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "1"}
    result = subprocess.run(["bash", str(copy)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1 and "expected exit 0" in result.stderr


def _gate(tmp_path: Path, data: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    script = ROOT / "examples" / "ci" / "kvfix-gate.sh"
    proc = subprocess.run(
        ["bash", str(script), str(data), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    return proc, tmp_path / "summary.md"


def test_ci_gate_writes_json_and_summary_from_one_run(tmp_path) -> None:
    import json

    clean = unpack("prefixed-basic", tmp_path / "data")
    proc, summary = _gate(tmp_path, clean, "error")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "kvfix-check.json").read_text())
    assert doc["command"] == "check" and "verified_records" in doc
    assert summary.read_text().startswith("#") and "kvfix check" in summary.read_text()
    legacy = unpack("legacy-basic", tmp_path / "legacy")
    proc, _ = _gate(tmp_path, legacy, "error")
    assert proc.returncode == 1 and "::error::kvfix check found problems" in proc.stdout
    proc, _ = _gate(tmp_path, tmp_path / "nothing-here")
    assert proc.returncode == 2 and "no db/CURRENT" in proc.stdout


def test_ci_example_installs_from_the_repository_and_runs_the_gate() -> None:
    text = (ROOT / "examples" / "ci" / "kvfix-check.yml").read_text()
    assert "pip install ./kvfix-src" in text and 'pip install "kvfix' not in text
    assert "kvfix-gate.sh" in text and "run-id:" not in text and "gh run list" in text
