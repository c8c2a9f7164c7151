"""scan never changes a byte or a file name of the data directory it reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli, run_kvfix, tree_digest, unpack


def _scan_everything(root: Path) -> None:
    for arg in (root, root / "db"):
        for extra in ([], ["--deep"], ["--pel", "--format", "json"], ["--format", "markdown"]):
            result = run_cli("scan", str(arg), *extra)
            assert result.exit_code in (0, 1), result.output
    assert run_kvfix("scan", root, "--format", "json").returncode in (0, 1)


def _assert_untouched(root: Path, before: dict[str, str]) -> None:
    after = tree_digest(root)
    assert after == before
    names = set(after)
    assert not any("rocksdict-config.json" in n for n in names)
    assert not any(Path(n).name.startswith("LOG") for n in names)


def test_scan_changes_nothing(fixture_dir):
    before = tree_digest(fixture_dir)
    assert "db/CURRENT" in before
    _scan_everything(fixture_dir)
    _assert_untouched(fixture_dir, before)


def test_scan_changes_nothing_on_read_only_copy(fixture_dir):
    before = tree_digest(fixture_dir)
    subprocess.run(["chmod", "-R", "a-w", str(fixture_dir)], check=True)
    try:
        _scan_everything(fixture_dir)
        _assert_untouched(fixture_dir, before)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(fixture_dir)], check=True)


_RO_MOUNT = r"""
set -e
mount --bind "$1" "$1"
mount -o remount,bind,ro "$1"
if touch "$1/db/probe" 2>/dev/null; then echo "mount is writable" >&2; exit 97; fi
shift
exec "$@"
"""


def test_scan_on_true_read_only_mount():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only bind mount needs root and unshare(1)")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m not permitted here: {probe.stderr.decode(errors='replace').strip()}")
    base = Path(tempfile.mkdtemp(prefix="kvfix-romount-"))
    try:
        for name in ("legacy-basic", "legacy-cluster", "prefixed-basic"):
            root = unpack(name, base)
            before = tree_digest(root)
            for arg in (root, root / "db"):
                cmd = ["unshare", "-m", "sh", "-c", _RO_MOUNT, "ro", str(root), sys.executable, "-m", "kvfix", "scan"]
                proc = subprocess.run(
                    [*cmd, str(arg), "--format", "json", "--deep"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "KVFIX_NO_PROGRESS": "1"},
                    timeout=120,
                )
                if proc.returncode == 97 or "mount:" in proc.stderr:
                    pytest.skip(f"cannot make a read-only bind mount: {proc.stderr.strip()}")
                assert proc.returncode == (0 if name == "prefixed-basic" else 1), proc.stderr
                assert proc.stderr == ""
                assert '"schema":2' in proc.stdout
            _assert_untouched(root, before)
    finally:
        shutil.rmtree(base, ignore_errors=True)
