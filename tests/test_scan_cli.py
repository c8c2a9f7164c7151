"""The command line around scan: version, help, formats, exit codes on a real process."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import run_cli, run_kvfix, unpack

import kvfix


def test_version_in_process():
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kvfix, version {kvfix.__version__}"


def test_python_m_kvfix_version():
    proc = run_kvfix("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"kvfix, version {kvfix.__version__}"


def test_console_script_version():
    import shutil
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "kvfix"
    if not exe.exists():
        exe = shutil.which("kvfix")
        if exe is None:
            pytest.skip("the kvfix console script is not installed in this environment")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert kvfix.__version__ in proc.stdout


def test_scan_help_mentions_read_only():
    result = run_cli("scan", "--help")
    assert result.exit_code == 0
    assert "--deep" in result.stdout and "--fail-on" in result.stdout and "--pel" in result.stdout


@pytest.mark.parametrize(("name", "code"), [("prefixed-basic", 0), ("legacy-basic", 1), ("upgraded-mixed", 1)])
def test_real_process_json_and_exit_code(tmp_path, name, code):
    path = unpack(name, tmp_path)
    proc = run_kvfix("scan", path, "--format", "json", "--pel")
    assert proc.returncode == code
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["schema"] == 2
    proc = run_kvfix("scan", path, "--fail-on", "info")
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert "\x1b" not in proc.stdout  # not a terminal: plain output, no colour
    assert proc.stdout.startswith("kvfix scan ")


def test_unescaped_html_is_not_an_output_format(tmp_path):
    """tabulate's unsafehtml would put names from the data into HTML unescaped."""
    d = unpack("legacy-basic", tmp_path)
    res = run_cli("scan", str(d), "--format", "unsafehtml")
    assert res.exit_code == 2 and "unsafehtml" in res.output
    res = run_cli("scan", str(d), "--format", "html")
    assert res.exit_code in (0, 1) and "<table>" in res.stdout
