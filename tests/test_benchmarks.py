"""The benchmarks still run on the code they measure (they reach into kvfix's modules): every
phase of benchmarks/bench.py on a tiny database, and benchmarks/shapes.py on a tiny shape.

Only that they run and count right is checked; their figures are the benchmark's business.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _env() -> dict[str, str]:
    return {**os.environ, "KVFIX_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}


def _phase(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench.py"), "--child", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_every_phase_of_bench_py_runs(tmp_path: Path) -> None:
    db = tmp_path / "db"
    counts = _phase("generate", str(db), "300")
    assert counts["entries"] == 10 * 300
    raw = _phase("raw", str(db))
    assert raw["records"] > counts["entries"] and len(raw["variants"]) == 5
    for name in ("scan", "deep", "deep1"):
        scan = _phase(name, str(db))
        assert scan["groups"] == counts["groups"], name
        assert scan["collisions"] == counts["groups"] + counts["consumers"] + counts["pel"], name
    assert _phase("deep", str(db))["entries"] == counts["entries"]
    migrate = _phase("migrate", str(db), str(tmp_path / "work"))
    assert migrate["rewrites"] == counts["groups"] + counts["consumers"] + counts["pel"]


def test_shapes_py_runs_every_command_on_a_tiny_shape(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--only", "many-groups", "--size", "5", "--keep", str(tmp_path / "keep"), "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "shapes.py"), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: a target missed (speed is not judged here)
    (result,) = json.loads(out.read_text())["results"]
    assert result["counts"]["groups"] == 5 and result["floor"]["seconds"] > 0
    assert len(result["commands"]) == 9
    exits = {label: c["exit"] for label, c in result["commands"].items()}
    assert all(code in (0, 1) for code in exits.values()), exits
    assert exits["migrate --yes --no-backup"] == 0 and exits["scan"] == 1  # legacy records until migrated
    assert "| `scan` |" in proc.stdout and "## Misses" in proc.stdout
